"""Hot reload: a new complete version is swapped in with zero failed requests; a broken one
is refused and the current version keeps serving."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import digit_like, publish_version, serve, wait_ready

CLIENTS = 4
REQUESTS_PER_CLIENT = 500  # 2,000 in all, across the swap
PAYLOAD = {"instances": [digit_like(5).tolist()]}


def test_swap_under_load_has_zero_failures(repo: Path, settings: Settings) -> None:
    live = settings.model_copy(update={"model_repository": repo, "reload_interval_s": 0.2})
    failures: list[str] = []
    versions: list[int] = []
    lock = threading.Lock()

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(REQUESTS_PER_CLIENT):
                response = client.post("/classify?model=mnist", json=PAYLOAD)
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:100]}")
                    else:
                        versions.append(response.json()["model"]["version"])

    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        threads = [threading.Thread(target=client_loop, args=(url,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while len(versions) < CLIENTS * REQUESTS_PER_CLIENT // 4:
            time.sleep(0.01)
        publish_version(repo / "mnist" / "1", repo / "mnist", 2)
        for thread in threads:
            thread.join()
        assert client.get("/models/mnist").json()["version"] == 2
        assert client.get("/readyz").json()["models"]["mnist"] == 2
    assert failures == []
    assert len(versions) == CLIENTS * REQUESTS_PER_CLIENT
    assert versions[0] == 1, "the first requests were served before the swap"
    assert versions[-1] == 2, "the last requests were served by the new version"


def test_corrupt_version_is_refused_and_serving_continues(
    repo: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    live = settings.model_copy(update={"model_repository": repo, "reload_interval_s": 0.1})
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        with caplog.at_level(logging.WARNING, logger="app.models.registry"):
            publish_version(repo / "mnist" / "1", repo / "mnist", 2, corrupt=True)
            time.sleep(1.0)
            (repo / "mnist" / "3").mkdir()  # incomplete: no manifest, no graphs
            time.sleep(1.0)
        refusals = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
        assert len(refusals) == 2, refusals  # one line each, not one every poll
        assert "checksum mismatch" in refusals[0]
        assert "no manifest" in refusals[1]
        response = client.post("/classify?model=mnist", json=PAYLOAD)
        assert response.status_code == 200
        assert response.json()["model"]["version"] == 1
        assert response.headers["x-model-version"] == "1"


def test_a_model_directory_removed_while_polling_does_not_end_hot_reload(
    repo: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The served model's directory disappears (say, a redeploy in progress): the loaded
    version keeps serving, the failed polls are logged once, and once a new version appears
    the watcher, still alive, swaps it in."""
    live = settings.model_copy(update={"model_repository": repo, "reload_interval_s": 0.05})
    saved = repo.parent / "saved-mnist"
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        with caplog.at_level(logging.WARNING, logger="app.models.registry"):
            (repo / "mnist").rename(saved)
            for _ in range(20):
                response = client.post("/classify?model=mnist", json=PAYLOAD)
                assert response.status_code == 200
                assert response.json()["model"]["version"] == 1
                time.sleep(0.02)
        failures = [r.getMessage() for r in caplog.records if "poll failed" in r.getMessage()]
        assert len(failures) == 1, failures  # logged once, not every 50 ms
        assert "FileNotFoundError" in failures[0]
        saved.rename(repo / "mnist")
        publish_version(repo / "mnist" / "1", repo / "mnist", 2)
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["models"]["mnist"] != 2:
            assert time.monotonic() < deadline, "the watcher never picked up version 2"
            time.sleep(0.05)
        assert client.post("/classify?model=mnist", json=PAYLOAD).json()["model"]["version"] == 2


def test_a_killed_watcher_is_restarted(repo: Path, settings: Settings) -> None:
    live = settings.model_copy(update={"model_repository": repo, "reload_interval_s": 0.05})
    app = create_app(live)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        watcher = app.state.watcher
        task = watcher.task
        task.get_loop().call_soon_threadsafe(task.cancel)  # killed from outside
        deadline = time.monotonic() + 10
        while watcher.task is task or not watcher.running:
            assert time.monotonic() < deadline, "the watcher was not restarted"
            time.sleep(0.02)
        assert watcher.failures == 1
        publish_version(repo / "mnist" / "1", repo / "mnist", 2)
        while client.get("/readyz").json()["models"]["mnist"] != 2:
            assert time.monotonic() < deadline + 20, "the restarted watcher did not reload"
            time.sleep(0.05)
