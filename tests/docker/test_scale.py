"""`docker compose --profile scale`: replicas behind nginx lose no request when one goes."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from tests.docker.engine import (
    Load,
    LoadResult,
    Project,
    answers,
    docker,
    healthy,
    logs,
    peak_rss_mib,
    wait_until,
)
from training.datasets import load_dataset

PROFILES = ("scale",)
REPLICAS = 3
REQUESTS = 2000
AFTERWARDS = 300  # requests run after the last restart, so the restarted replicas serve again


@pytest.fixture(scope="module")
def proxy(project: Project) -> str:
    """The proxy's URL once every replica is healthy (compose waits for that)."""
    project.compose("up", "--detach", "--wait", "proxy", timeout=300)
    url = f"http://127.0.0.1:{project.env['LATENTSERVE_PROXY_PORT']}"
    wait_until(lambda: answers(f"{url}/readyz"), 30, "the proxy answers")
    return url


@pytest.fixture(scope="module")
def replicas(project: Project, proxy: str) -> list[str]:
    found = project.containers("replica")
    assert len(found) == REPLICAS
    return found


def classify_url(proxy: str) -> str:
    return f"{proxy}/classify?model=fashion-mnist"


def served(container: str) -> int:
    """Requests a replica answered, from its own access log."""
    return len(re.findall(r" /classify 200 ", logs(container)))


def restart(container: str) -> None:
    docker("stop", container, timeout=60)
    docker("start", container)
    wait_until(lambda: healthy(container), 120, f"{container} healthy again")


def test_load_spreads_over_every_replica(
    proxy: str, replicas: list[str], fashion: tuple[list[bytes], list[str]], report: dict
) -> None:
    before = {c: served(c) for c in replicas}
    with Load(classify_url(proxy), fashion[0]) as load:
        result = load.finish(at_least=300)
    assert result.failures == []
    counts = Counter({c: served(c) - before[c] for c in replicas})
    report["spread"] = sorted(counts.values())
    # Peak resident memory of each replica's server process after serving: what deploy/k8s
    # sizes its memory request from.
    report["replica_peak_rss_mib"] = [peak_rss_mib(c) for c in replicas]
    assert sum(counts.values()) == result.requests
    assert min(counts.values()) >= result.requests / REPLICAS / 2, counts


def test_grpc_goes_through_the_proxy_to_every_replica(
    project: Project, proxy: str, replicas: list[str], fashion: tuple[list[bytes], list[str]]
) -> None:
    """nginx's gRPC listener (grpc_pass) reaches the replicas' OIP V2 gRPC port."""
    import tritonclient.grpc as triton

    address = f"127.0.0.1:{project.env['LATENTSERVE_PROXY_GRPC_PORT']}"
    files, names = fashion
    labels = []
    for start in range(0, 60, 4):  # several calls, so more than one replica answers
        client = triton.InferenceServerClient(address)  # a new connection each time
        images = triton.InferInput("images", [4], "BYTES")
        images.set_data_from_numpy(np.array(files[start : start + 4], dtype=object))
        result = client.infer(
            "fashion-mnist", [images], outputs=[triton.InferRequestedOutput("label")]
        )
        labels += result.as_numpy("label").tolist()
        client.close()
    classes = load_dataset("fashion-mnist").class_names
    accuracy = np.mean(
        [classes[label] == name for label, name in zip(labels, names[:60], strict=True)]
    )
    assert accuracy >= 0.8, accuracy
    answered = [len(re.findall(r"ModelInfer OK", logs(c))) for c in replicas]
    assert sum(answered) == 15 and sum(1 for a in answered if a) >= 2, answered


def restarted_under_load(
    proxy: str, containers: list[str], files: list[bytes]
) -> tuple[LoadResult, dict[str, int]]:
    """Restart `containers` one after the other while the load runs through the proxy; the
    load's result, and each replica's served count just after its restart."""
    with Load(classify_url(proxy), files) as load:
        wait_until(lambda: load.done >= 200, 60, "load under way")
        back = {}
        for container in containers:
            restart(container)  # a restarted replica may come back under a new address
            back[container] = served(container)
        result = load.finish(at_least=max(REQUESTS, load.done + AFTERWARDS))
    return result, back


def figures(result: LoadResult) -> dict[str, object]:
    return {
        "requests": result.requests,
        "failed": len(result.failures),
        "seconds": round(result.seconds, 1),
    }


def test_a_replica_stopped_and_restarted_loses_nothing(
    proxy: str, replicas: list[str], fashion: tuple[list[bytes], list[str]], report: dict
) -> None:
    result, _ = restarted_under_load(proxy, replicas[1:2], fashion[0])
    report["replica_restart"] = figures(result)
    assert result.failures == [], result.failures[:5]


def test_a_rolling_restart_loses_nothing(
    proxy: str, replicas: list[str], fashion: tuple[list[bytes], list[str]], report: dict
) -> None:
    result, back = restarted_under_load(proxy, replicas, fashion[0])
    report["rolling_restart"] = figures(result)
    assert result.failures == [], result.failures[:5]
    assert all(healthy(c) for c in replicas)
    # ...and the proxy found it there: every replica served again after its restart.
    assert all(served(c) > back[c] for c in replicas), {c: back[c] for c in replicas}
