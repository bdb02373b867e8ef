"""The image as `docker compose up` runs it: ready, right, healthy, locked down, drains on stop."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.docker.engine import (
    ROOT,
    Project,
    answers,
    docker,
    healthy,
    inspect,
    logs,
    peak_rss_mib,
    wait_until,
)

READY_WITHIN_S = 60
GRACE_S = 35  # compose's stop_grace_period
IN_FLIGHT = 12  # concurrent 256-image requests open at the stop (the queue holds 16 of them)


@pytest.fixture(scope="module")
def service(project: Project, report: dict) -> tuple[str, str]:
    """(base URL, container id) of the default profile's one service."""
    start = time.monotonic()
    project.compose("up", "--detach", "latentserve")
    (container,) = project.containers("latentserve")
    url = f"http://127.0.0.1:{project.env['LATENTSERVE_PUBLISH_PORT']}"
    waited = wait_until(lambda: answers(f"{url}/readyz"), READY_WITHIN_S, "/readyz 200")
    report["ready_seconds"] = round(time.monotonic() - start, 1)
    assert waited < READY_WITHIN_S
    return url, container


def test_ready_and_healthy(service: tuple[str, str], report: dict) -> None:
    _, container = service
    report["healthy_seconds"] = round(wait_until(lambda: healthy(container), 90, "healthy"), 1)


def test_the_similarity_graphs_baked_in_are_opened_not_built(service: tuple[str, str]) -> None:
    """The image's graph cache (built at `docker build`) serves the shipped versions although
    compose mounts the repository over the baked-in one: nothing is built at start."""
    _, container = service
    loaded = [line for line in logs(container).splitlines() if "similarity graph:" in line]
    assert loaded, "no version reported its similarity graph"
    assert all("similarity graph: built" not in line for line in loaded), loaded
    assert any("opened from the cache" in line for line in loaded)


def test_real_images_get_their_classes(
    service: tuple[str, str], fashion: tuple[list[bytes], list[str]]
) -> None:
    url, _ = service
    files, names = fashion
    response = httpx.post(
        f"{url}/classify?model=fashion-mnist",
        files=[("file", (f"{i}.png", f)) for i, f in enumerate(files)],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    predicted = [p["class_name"] for p in response.json()["predictions"]]
    accuracy = float(np.mean([p == n for p, n in zip(predicted, names, strict=True)]))
    assert accuracy >= 0.85, accuracy  # the shipped version scores 0.90 on the whole test split
    drawn = (ROOT / "docs" / "samples" / "drawn-7.png").read_bytes()
    response = httpx.post(f"{url}/classify?model=mnist", files={"file": drawn}, timeout=30)
    assert response.json()["predictions"][0]["class_name"] == "7"
    assert httpx.get(f"{url}/", timeout=10).status_code == 200  # the demo page is in the image


def test_memory_after_a_full_batch(service: tuple[str, str], report: dict) -> None:
    url, container = service
    pixels = np.random.default_rng(0).integers(0, 256, (256, 28, 28)).tolist()
    for endpoint in ("embed", "classify", "reconstruct"):
        response = httpx.post(f"{url}/{endpoint}", json={"instances": pixels}, timeout=60)
        assert response.status_code == 200, response.text
    report["service_peak_rss_mib"] = peak_rss_mib(container)


def test_locked_down(service: tuple[str, str]) -> None:
    _, container = service
    info = inspect(container)
    assert info["Config"]["User"] == "10001"
    status = docker("exec", container, "cat", "/proc/1/status")
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}  # the server process itself, not only exec's user
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    denied = docker("exec", container, "sh", "-c", "touch /srv/x 2>&1 || echo denied")
    assert "Read-only file system" in denied
    (models,) = [m for m in info["Mounts"] if m["Destination"] == "/srv/models"]
    assert models["RW"] is False
    bindings = info["HostConfig"]["PortBindings"]["8000/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]


def test_grpc_answers_as_http_does(
    service: tuple[str, str], project: Project, fashion: tuple[list[bytes], list[str]]
) -> None:
    """The published gRPC port reaches the container's OIP V2 service (tritonclient.grpc),
    and its classes are /classify's."""
    import tritonclient.grpc as triton

    url, _ = service
    files = fashion[0][:32]
    client = triton.InferenceServerClient(
        f"127.0.0.1:{project.env['LATENTSERVE_PUBLISH_GRPC_PORT']}"
    )
    assert client.is_server_ready() and client.is_model_ready("fashion-mnist")
    images = triton.InferInput("images", [len(files)], "BYTES")
    images.set_data_from_numpy(np.array(files, dtype=object))
    result = client.infer("fashion-mnist", [images], outputs=[triton.InferRequestedOutput("label")])
    response = httpx.post(
        f"{url}/classify?model=fashion-mnist",
        files=[("file", (f"{i}.png", f)) for i, f in enumerate(files)],
        timeout=60,
    )
    labels = [p["label"] for p in response.json()["predictions"]]
    assert result.as_numpy("label").tolist() == labels


def test_stop_finishes_requests_in_flight(
    service: tuple[str, str], fashion: tuple[list[bytes], list[str]], report: dict
) -> None:
    url, container = service
    files = fashion[0] + fashion[0][:56]  # 256 images per request
    body = [("file", (f"{i}.png", f)) for i, f in enumerate(files)]
    stopped: list[float] = []

    def send(_: int) -> tuple[int, float]:
        response = httpx.post(f"{url}/embed?model=fashion-mnist", files=body, timeout=GRACE_S)
        return response.status_code, time.monotonic()

    def stop() -> None:
        start = time.monotonic()
        stopped.append(start)
        docker("stop", container, timeout=GRACE_S + 30)
        stopped.append(time.monotonic() - start)

    with ThreadPoolExecutor(IN_FLIGHT + 1) as pool:
        sent = [pool.submit(send, i) for i in range(IN_FLIGHT)]
        # Stop as soon as the first answer is back: the others are sent and not yet answered.
        while not any(f.done() for f in sent):
            time.sleep(0.005)
        stopping = pool.submit(stop)
        results = [f.result() for f in sent]
        stopping.result()
    statuses = [status for status, _ in results]
    after_stop = sum(done > stopped[0] for _, done in results)
    report["stop"] = {
        "in_flight_at_stop": after_stop,
        "answered_200": statuses.count(200),
        "stop_seconds": round(stopped[1], 1),
    }
    assert statuses == [200] * IN_FLIGHT
    assert after_stop >= 1, "every request ended before the stop: nothing was drained"
    state = inspect(container)["State"]
    assert state["ExitCode"] == 0 and stopped[1] < GRACE_S, (state, stopped)


def test_image_has_no_training_code(image: str) -> None:
    listing = docker("run", "--rm", "--entrypoint", "ls", image, "/srv")
    assert sorted(listing.split()) == ["app", "index-cache", "models"]  # graphs: no code
