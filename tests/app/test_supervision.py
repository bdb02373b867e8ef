"""Supervised background work: failures are logged, waiters failed, tasks restarted."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest

from app.main import create_app
from app.pipeline.supervision import Supervised
from app.settings import Settings
from tests.app.conftest import digit_like, serve, wait_ready


def test_a_failing_task_is_logged_reported_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        runs: list[int] = []
        reported: list[BaseException] = []

        async def flaky() -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise RuntimeError(f"crash {len(runs)}")
            await asyncio.Event().wait()  # the third run stays up

        task = Supervised("flaky", flaky, on_failure=reported.append)
        task.start()
        for _ in range(100):
            if len(runs) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(runs) == 3 and task.running
        assert [str(e) for e in reported] == ["crash 1", "crash 2"]
        assert task.failures == 2
        await task.stop()
        assert not task.running

    with caplog.at_level(logging.ERROR, logger="app.pipeline.supervision"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None  # with its traceback


def test_a_task_that_finishes_or_is_stopped_is_not_restarted() -> None:
    async def scenario() -> None:
        runs: list[str] = []

        async def once() -> None:
            runs.append("ran")

        done = Supervised("once", once)
        done.start()
        await asyncio.sleep(0.2)
        assert runs == ["ran"] and not done.running and done.failures == 0

        async def forever() -> None:
            runs.append("forever")
            await asyncio.Event().wait()

        stopped = Supervised("forever", forever)
        stopped.start()
        await asyncio.sleep(0.05)
        await stopped.stop()
        await asyncio.sleep(0.2)
        assert runs.count("forever") == 1 and stopped.failures == 0

    asyncio.run(scenario())


def test_the_service_keeps_answering_after_its_batch_worker_dies(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug kills the batch worker under load: the requests it held fail with a 500 at once,
    every later request is answered by the restarted worker."""
    import app.pipeline.batcher

    real_prepare = app.pipeline.batcher._prepare
    armed = threading.Event()

    def prepare(batch):  # type: ignore[no-untyped-def]
        if armed.is_set():
            armed.clear()
            raise RuntimeError("bug in the batch worker")
        return real_prepare(batch)

    monkeypatch.setattr(app.pipeline.batcher, "_prepare", prepare)
    payload = {"instances": [digit_like(3).tolist()]}
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(client)
        expected = client.post("/classify", json=payload).json()
        armed.set()
        killed = client.post("/classify", json=payload)
        assert killed.status_code == 500
        assert "batch worker failed" in killed.json()["error"]["message"]
        assert killed.headers["x-request-id"]
        answers = [client.post("/classify", json=payload) for _ in range(50)]
        assert [a.status_code for a in answers] == [200] * 50
        assert answers[-1].json() == expected
