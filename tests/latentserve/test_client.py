"""The Python client against real servers: results, chunking, pinning, errors and retries."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr

from app.contract.errors import QueueFull
from app.contract.repository import Manifest
from app.main import create_app
from app.models.inference import ModelVersion, load_version
from app.pipeline.runner import make_runner
from app.settings import Settings
from latentserve import (
    AsyncClient,
    Client,
    InvalidEmbedding,
    InvalidImage,
    ModelNotFound,
    ServiceUnavailable,
    Unauthorized,
    VersionNotFound,
)
from latentserve.inputs import png
from latentserve.protocol import CLASSIFY, SIMILAR
from latentserve.results import ModelRef
from tests.app.conftest import digit_like, serve, wait_ready

IMAGES = np.stack([digit_like(i) for i in range(20)])  # over max_images (8): three chunks


@pytest.fixture(scope="module")
def direct(model_repo: Path) -> ModelVersion:
    """The tiny mnist model, called in-process: what the service must answer."""
    from app.contract.repository import latest_version

    return load_version(*latest_version(model_repo, "mnist"))


def test_embed_chunks_beyond_max_images_and_keeps_input_order(
    base_url: str, direct: ModelVersion
) -> None:
    with Client(base_url) as client:
        result = client.embed(IMAGES, model="mnist")
    assert result.vectors.dtype == np.float32 and result.vectors.shape[0] == 20
    np.testing.assert_allclose(result.vectors, direct.encode(IMAGES), atol=1e-5)
    assert (result.model.name, result.model.version) == ("mnist", 1)


def test_every_input_type(base_url: str, direct: ModelVersion, tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    path.write_bytes(png(IMAGES[0]))
    inputs = [str(path), path, png(IMAGES[0]), Image.fromarray(IMAGES[0]), IMAGES[0]]
    with Client(base_url) as client:
        vectors = client.embed(inputs, model="mnist").vectors
    np.testing.assert_allclose(vectors, np.repeat(direct.encode(IMAGES[:1]), 5, axis=0), atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        Client(base_url).embed(IMAGES.astype(np.float32))


def test_classify_reconstruct_and_similar(base_url: str, direct: ModelVersion) -> None:
    with Client(base_url) as client:
        classes = client.classify(IMAGES, model="mnist", top_k=3)
        rebuilt = client.reconstruct(IMAGES[:10], model="mnist")
        by_image = client.similar(IMAGES[:10], model="mnist", k=4)
        latents = client.embed(IMAGES[:10], model="mnist").vectors
        by_vector = client.similar(embeddings=latents, model="mnist", k=4)
    expected = direct.classify(IMAGES).argmax(axis=1)
    np.testing.assert_array_equal(classes.labels, expected)
    assert len(classes.predictions[0].top_k) == 3
    np.testing.assert_allclose(
        classes.predictions[5].probabilities, direct.classify(IMAGES[5:6])[0], atol=1e-5
    )
    _, pixels = direct.reconstruct(IMAGES[:10])
    np.testing.assert_array_equal(rebuilt.images, pixels)
    assert rebuilt.errors.shape == (10,)
    assert [len(row) for row in by_image.neighbours] == [4] * 10
    assert by_vector.neighbours == by_image.neighbours
    # the out-of-distribution verdicts, as the model version itself scores the images
    scores = direct.run("classify", np.stack(IMAGES[:10])).ood_score
    got = [p.ood_score for p in classes.predictions[:10]]
    np.testing.assert_allclose(got, scores, atol=1e-6)
    np.testing.assert_allclose(rebuilt.ood_scores, scores, atol=1e-6)  # type: ignore[arg-type]
    assert rebuilt.in_distribution.tolist() == [s <= 0.99 for s in scores]  # type: ignore[union-attr]


def test_thresholds_and_neighbour_images(base_url: str) -> None:
    with Client(base_url) as client:
        strict = client.classify(IMAGES[:4], model="mnist", ood_threshold=0.0)
        rebuilt = client.reconstruct(IMAGES[:4], model="mnist", ood_threshold=1.0)
        found = client.similar(IMAGES[:2], model="mnist", k=3, neighbour_images=True)
        plain = client.similar(IMAGES[:2], model="mnist", k=3)
    assert [p.in_distribution for p in strict.predictions] == [
        p.ood_score == 0 for p in strict.predictions
    ]
    assert rebuilt.in_distribution is not None and rebuilt.in_distribution.all()
    images = [n.image for row in found.neighbours for n in row]
    assert all(i is not None and i.shape == (28, 28) and i.dtype == np.uint8 for i in images)
    assert all(n.image is None for row in plain.neighbours for n in row)
    assert found.neighbours == plain.neighbours  # same neighbours; images are not compared


def test_fields_a_newer_service_adds_are_ignored() -> None:
    """A client already deployed keeps working when the service grows its answers."""
    body = {
        "model": {"name": "m", "version": 3, "tag": "new"},
        "predictions": [
            {
                "label": 1,
                "class_name": "1",
                "confidence": 0.9,
                "probabilities": [0.1, 0.9],
                "top_k": [{"label": 1, "class_name": "1", "confidence": 0.9, "rank": 1}],
                "calibrated_confidence": 0.8,
            }
        ],
    }
    rows, ref = CLASSIFY.read(httpx.Response(200, json=body))
    assert ref == ModelRef("m", 3) and rows[0].label == 1 and rows[0].ood_score is None
    unknown = {"id": "train/1", "distance": 0.1, "label": None, "class_name": None, "extra": 1}
    neighbours = {"model": {"name": "m", "version": 3}, "neighbours": [[unknown]]}
    (row,), _ = SIMILAR.read(httpx.Response(200, json=neighbours))
    assert row[0].id == "train/1" and row[0].image is None


def test_errors_are_typed_and_name_the_callers_input(base_url: str) -> None:
    inputs = [png(image) for image in IMAGES]
    inputs[13] = b"not an image"  # in the second chunk
    with Client(base_url) as client:
        with pytest.raises(InvalidImage) as info:
            client.embed(inputs, model="mnist")
        assert info.value.index == 13 and info.value.status == 422
        assert info.value.request_id
        with pytest.raises(ModelNotFound):
            client.embed(IMAGES[:1], model="nope")
        with pytest.raises(VersionNotFound, match="served"):
            client.embed(IMAGES[:1], model="mnist", version=9)
        with pytest.raises(InvalidEmbedding):
            client.similar(embeddings=np.zeros((1, 3)), model="mnist")


def test_async_client(base_url: str, direct: ModelVersion) -> None:
    async def scenario() -> None:
        async with AsyncClient(base_url, concurrency=2) as client:
            result = await client.embed(IMAGES, model="mnist")
            classes = await client.classify(IMAGES[:3])  # the default model
            np.testing.assert_allclose(result.vectors, direct.encode(IMAGES), atol=1e-5)
            assert classes.model.name == "mnist"
            with pytest.raises(InvalidImage):
                await client.classify([b"nope"], model="mnist")

    asyncio.run(scenario())


def test_api_key(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_keys": [SecretStr("s3cret")]}))
    with serve(app) as url:
        wait_ready(httpx.Client(base_url=url))
        with pytest.raises(Unauthorized):
            Client(url).embed(IMAGES[:1], model="mnist")
        assert Client(url, api_key="s3cret").embed(IMAGES[:1], model="mnist").vectors.shape[0] == 1


class QueueFullTwice:
    """A real runner behind a queue that is full for the first two requests (429)."""

    def __init__(self, settings: Settings) -> None:
        from app.http.metrics import Metrics

        self.inner = make_runner(settings, Metrics())
        self.refused = 0

    async def run(self, *args: object) -> object:
        if self.refused < 2:
            self.refused += 1
            raise QueueFull("batch queue full; retry shortly")
        return await self.inner.run(*args)  # type: ignore[arg-type]

    def retire(self, model: object) -> None:
        self.inner.retire(model)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.inner.close()


def test_429_is_retried_after_retry_after(settings: Settings, direct: ModelVersion) -> None:
    runner = QueueFullTwice(settings)
    with serve(create_app(settings, runner=runner)) as url:  # type: ignore[arg-type]
        wait_ready(httpx.Client(base_url=url))
        started = time.monotonic()
        result = Client(url).embed(IMAGES[:2], model="mnist")
        waited = time.monotonic() - started
    assert runner.refused == 2
    assert waited >= 2.0  # Retry-After: 1, twice
    np.testing.assert_allclose(result.vectors, direct.encode(IMAGES[:2]), atol=1e-5)


def test_503_while_loading_is_retried_until_ready(settings: Settings) -> None:
    release = threading.Event()

    def slow_loader(path: Path, manifest: Manifest) -> ModelVersion:
        release.wait(timeout=30)
        return load_version(path, manifest)

    with serve(create_app(settings, loader=slow_loader)) as url:
        threading.Timer(1.0, release.set).start()
        result = Client(url, retries=20).classify(IMAGES[:2], model="mnist")
    assert len(result.predictions) == 2


def test_a_server_that_is_down_is_a_clear_error_after_the_retries() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="did not answer after 3 retries"):
        Client(f"http://127.0.0.1:{port}", retries=3, timeout=2).embed(IMAGES[:1], model="m")
    assert time.monotonic() - started < 10  # backoff is capped: no hang
