"""Batching, timing headers and /metrics through the real server."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import numpy as np
import pytest

from app.contract.errors import DeadlineExceeded, QueueFull
from app.core.jobs import Job, Operation, Outputs
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import RaisingRunner, digit_like, png_bytes, serve, wait_ready

CONCURRENCY = 24


async def _embed_concurrently(base_url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        requests = [
            client.post("/embed", content=png_bytes(digit_like(i)),
                        headers={"content-type": "image/png"})
            for i in range(count)
        ]  # fmt: skip
        return await asyncio.gather(*requests)


def test_concurrent_requests_are_batched_without_changing_outputs(
    client: httpx.Client, base_url: str
) -> None:
    alone = {
        i: np.array(client.post("/embed", json={"instances": [digit_like(i).tolist()]})
                    .json()["embeddings"][0])
        for i in range(CONCURRENCY)
    }  # fmt: skip
    batch_sizes: list[int] = []
    for _ in range(5):  # concurrency is up to the OS; a few rounds make sharing certain
        responses = asyncio.run(_embed_concurrently(base_url, CONCURRENCY))
        for i, response in enumerate(responses):
            assert response.status_code == 200
            got = np.array(response.json()["embeddings"][0])
            assert np.max(np.abs(got - alone[i])) <= 1e-6
            batch_sizes.append(int(response.headers["x-batch-images"]))
        if max(batch_sizes) > 1:
            break
    assert max(batch_sizes) > 1, "no two concurrent requests ever shared a model call"


def test_responses_carry_model_and_timing_headers(client: httpx.Client) -> None:
    response = client.post("/classify", json={"instances": [digit_like(2).tolist()] * 3})
    assert response.headers["x-model-name"] == "mnist"
    assert response.headers["x-model-version"] == "1"
    assert float(response.headers["x-queue-time-ms"]) >= 0
    assert float(response.headers["x-inference-time-ms"]) > 0
    assert int(response.headers["x-batch-images"]) >= 3


def test_metrics_endpoint(client: httpx.Client) -> None:
    client.post("/classify", json={"instances": [digit_like(1).tolist()]})
    client.post("/classify", content=b"not an image", headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    # Every series names the model version (prometheus-client sorts the labels).
    served = 'model="mnist",status="200",version="1"'
    assert f'latentserve_requests_total{{endpoint="/classify",{served}}}' in text
    assert (
        'latentserve_requests_total{endpoint="/classify",model="",status="422",version=""}' in text
    )
    batch = 'model="mnist",operation="classify",version="1"'
    assert f'latentserve_batch_images_bucket{{le="1.0",{batch}}}' in text
    assert "latentserve_queue_images{" in text
    assert f"latentserve_inference_seconds_count{{{batch}}}" in text
    queued = re.search(
        r'latentserve_queue_seconds_count\{model="mnist",operation="classify",version="1"\} (\S+)',
        text,
    )
    assert queued is not None and float(queued.group(1)) >= 1
    assert "latentserve_request_seconds_bucket" in text


def test_a_full_queue_is_429_with_retry_after(settings: Settings) -> None:
    app = create_app(
        settings, runner=RaisingRunner(QueueFull("batch queue full (max_queue_images)"))
    )  # type: ignore[arg-type]
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        response = client.post("/embed", json={"instances": [digit_like(1).tolist()]})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "queue_full"


def test_unbatched_runner_gives_the_same_answers(settings: Settings, client: httpx.Client) -> None:
    """batching=false (the benchmark's per-request baseline) serves identical results."""
    payload = {"instances": [digit_like(6).tolist(), digit_like(7).tolist()]}
    batched = client.post("/classify", json=payload)
    app = create_app(settings.model_copy(update={"batching": False}))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as plain:
        wait_ready(plain)
        unbatched = plain.post("/classify", json=payload)
    assert unbatched.headers["x-batch-images"] == "2"  # one call for its two images
    np.testing.assert_allclose(
        [p["probabilities"] for p in unbatched.json()["predictions"]],
        [p["probabilities"] for p in batched.json()["predictions"]],
        atol=1e-6,
    )


class _SlowModel:
    """Stands in for a model whose calls take longer than the deadline."""

    name, version, manifest = "slow", 1, None

    def run(self, operation: Operation, images: np.ndarray) -> Outputs:
        threading.Event().wait(0.5)
        return Outputs(latent=np.zeros((len(images), 4), dtype=np.float32))


@pytest.mark.parametrize("batching", [True, False])
def test_deadline_includes_queue_time_and_gives_504(settings: Settings, batching: bool) -> None:
    from app.core.jobs import Runner
    from app.http.metrics import Metrics
    from app.pipeline.runner import BatchingRunner, DirectRunner

    async def scenario() -> None:
        fast = settings.model_copy(update={"request_timeout_ms": 100})
        runner: Runner = BatchingRunner(fast, Metrics()) if batching else DirectRunner(0.1)
        with pytest.raises(DeadlineExceeded, match="request_timeout_ms") as info:
            await runner.run(_SlowModel(), "embed", Job.of(np.zeros((1, 28, 28), np.uint8)))  # type: ignore[arg-type]
        assert info.value.status_code == 504
        await runner.close()

    asyncio.run(scenario())
