"""Several versions served at once under a version policy, and requests pinned to one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from app.contract.repository import RepositoryError
from app.main import create_app
from app.models.versions import VersionPolicy
from app.settings import Settings
from tests.app.conftest import digit_like, publish_version, serve, wait_ready

PAYLOAD = {"instances": [digit_like(5).tolist(), digit_like(8).tolist()]}
CLIENTS = 4
PINNED_REQUESTS = 500  # per client: 2,000 pinned requests across the reload


@pytest.mark.parametrize(
    ("text", "available", "served"),
    [
        ("latest", [1, 2, 3], [3]),
        ("latest:2", [1, 3, 2], [3, 2]),
        ("latest:5", [1, 2], [2, 1]),
        ("all", [2, 1, 3], [3, 2, 1]),
        ("1,3", [1, 2, 3], [3, 1]),
        (" 3 , 1 ", [1, 2], [1]),
    ],
)
def test_policies_select_as_tensorflow_serving_does(
    text: str, available: list[int], served: list[int]
) -> None:
    assert VersionPolicy.parse(text).select(available) == served


@pytest.mark.parametrize("text", ["latest:0", "newest", "1,x", "0", "", "latest:-1"])
def test_a_bad_policy_stops_the_start_naming_the_setting(text: str, model_repo: Path) -> None:
    with pytest.raises(ValidationError, match="version_policy"):
        Settings(model_repository=model_repo, version_policy=text)


def three_versions(repo: Path, other: Path) -> Path:
    """mnist 1 (tiny), 2 (a copy of 1) and 3 (trained with another seed: other weights)."""
    publish_version(repo / "mnist" / "1", repo / "mnist", 2)
    publish_version(other, repo / "mnist", 3)
    return repo


def embeddings(client: httpx.Client, query: str = "") -> tuple[np.ndarray, int]:
    response = client.post(f"/embed?model=mnist{query}", json=PAYLOAD)
    assert response.status_code == 200, response.text
    vectors = np.array(response.json()["embeddings"], np.float32)
    return vectors, int(response.headers["x-model-version"])


def test_latest_two_serves_both_and_a_request_picks_one(
    repo: Path, other_mnist: Path, settings: Settings
) -> None:
    live = settings.model_copy(
        update={
            "model_repository": three_versions(repo, other_mnist),
            "version_policy": VersionPolicy.parse("latest:2"),
        }
    )
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        assert client.get("/readyz").json()["versions"]["mnist"] == [3, 2]
        info = client.get("/models/mnist").json()
        assert info["version"] == 3 and info["version_policy"] == "latest:2"
        assert [v["version"] for v in info["versions"]] == [3, 2]
        assert client.get("/models/mnist/versions/2").json()["version"] == 2
        highest, version = embeddings(client)
        pinned, pinned_version = embeddings(client, "&version=2")
        assert (version, pinned_version) == (3, 2)
        assert not np.allclose(highest, pinned)  # two different models really are served
        for path in ("/embed?model=mnist&version=1", "/models/mnist/versions/1"):
            response = (
                client.post(path, json=PAYLOAD) if path.startswith("/embed") else client.get(path)
            )
            assert response.status_code == 404
            error = response.json()["error"]
            assert error["type"] == "version_not_found"
            assert "[3, 2]" in error["message"]  # it lists the served versions
        text = client.get("/metrics").text
        assert 'model="mnist",operation="embed",version="2"' in text


def test_explicit_versions_are_served_and_a_missing_one_stops_the_start(
    repo: Path, other_mnist: Path, settings: Settings
) -> None:
    three_versions(repo, other_mnist)
    settings = settings.model_copy(update={"models": ["mnist"]})
    app = create_app(
        settings.model_copy(
            update={"model_repository": repo, "version_policy": VersionPolicy.parse("1,3")}
        )
    )
    app.state.registry.plan()
    assert app.state.registry.served()["mnist"] == [3, 1]
    missing = create_app(
        settings.model_copy(
            update={"model_repository": repo, "version_policy": VersionPolicy.parse("1,7")}
        )
    )
    with pytest.raises(RepositoryError, match=r"no version \[7\]"):
        missing.state.registry.plan()


def test_pinned_requests_get_identical_vectors_across_a_reload(
    repo: Path, other_mnist: Path, settings: Settings
) -> None:
    """latest:2 serves 3 and 2; version 4 lands: 4 and 3 are served, 2 retired. 2,000
    requests pinned to version 3 during the reload all succeed with the same vectors."""
    live = settings.model_copy(
        update={
            "model_repository": three_versions(repo, other_mnist),
            "version_policy": VersionPolicy.parse("latest:2"),
            "reload_interval_s": 0.1,
        }
    )
    failures: list[str] = []
    vectors: list[np.ndarray] = []
    lock = threading.Lock()

    def pinned_client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(PINNED_REQUESTS):
                response = client.post("/embed?model=mnist&version=3", json=PAYLOAD)
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:100]}")
                    else:
                        vectors.append(np.array(response.json()["embeddings"], np.float32))

    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        reference, _ = embeddings(client, "&version=3")
        threads = [threading.Thread(target=pinned_client, args=(url,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while len(vectors) < CLIENTS * PINNED_REQUESTS // 4:
            time.sleep(0.01)
        publish_version(repo / "mnist" / "1", repo / "mnist", 4)  # unlike 3: a seed-0 model
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["versions"]["mnist"] != [4, 3]:
            assert time.monotonic() < deadline, "version 4 was never served"
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        latest, version = embeddings(client)
        assert client.post("/embed?model=mnist&version=2", json=PAYLOAD).status_code == 404
    assert failures == []
    assert len(vectors) == CLIENTS * PINNED_REQUESTS
    changed = [i for i, v in enumerate(vectors) if not np.array_equal(v, reference)]
    assert changed == []
    assert version == 4 and not np.allclose(latest, reference)  # unpinned moved on
