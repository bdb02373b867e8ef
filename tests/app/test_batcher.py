"""The dynamic batcher's logic, with a plain numpy function standing in for the model."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

from app.contract.errors import QueueFull, ServiceError
from app.core.jobs import Job, Outputs
from app.pipeline.batcher import Batcher


class Recorder:
    """Doubles its input; records each call's batch size; can be held to let work pile up."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, images: np.ndarray) -> Outputs:
        self.gate.wait(timeout=10)
        if (images == 255).any():
            raise ValueError("poison image")
        self.calls.append(len(images))
        # Two outputs of different shapes: rows of both must reach the right request.
        return Outputs(latent=images.astype(np.float32) * 2, probabilities=images.sum(axis=(1, 2)))


def images(value: int, count: int = 1) -> np.ndarray:
    return np.full((count, 28, 28), value, dtype=np.uint8)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_one_call_and_keep_their_rows() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=64, max_delay_s=0.05, max_queue=1000)
        fn.gate.clear()
        first = asyncio.create_task(batcher.submit(Job.of(images(1))))  # occupies the worker
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit(Job.of(images(v, v)))) for v in (2, 3, 4)]
        await asyncio.sleep(0.05)
        fn.gate.set()
        results = await asyncio.gather(first, *rest)
        assert fn.calls == [1, 2 + 3 + 4]
        for value, result in zip((1, 2, 3, 4), results, strict=True):
            assert result.outputs.latent.shape == (value, 28, 28)
            assert (result.outputs.latent == value * 2).all()
            assert (result.outputs.probabilities == value * 784).all()
        assert results[1].timing.batch_images == 9
        await batcher.close()

    run(scenario())


def test_a_lone_request_does_not_wait_for_the_max_delay() -> None:
    async def scenario() -> None:
        batcher = Batcher(Recorder(), max_batch=64, max_delay_s=60, max_queue=100)
        # With a 60 s max delay, finishing at all within 10 s means it did not wait.
        result = await asyncio.wait_for(batcher.submit(Job.of(images(1))), timeout=10)
        assert result.timing.batch_images == 1
        await batcher.close()

    run(scenario())


def test_batches_flush_at_max_batch_images() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=4, max_delay_s=0.01, max_queue=100)
        fn.gate.clear()
        tasks = [
            asyncio.create_task(batcher.submit(Job.of(images(v % 200 + 1, 2)))) for v in range(5)
        ]
        await asyncio.sleep(0.05)
        fn.gate.set()
        await asyncio.gather(*tasks)
        assert sum(fn.calls) == 10
        assert max(fn.calls) <= 4
        await batcher.close()

    run(scenario())


def test_an_oversize_request_runs_alone_in_max_batch_calls() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=4, max_delay_s=0.01, max_queue=100)
        job = Job.of(np.concatenate([images(v) for v in range(10)]))
        result = await batcher.submit(job)
        assert fn.calls == [4, 4, 2]  # the model never sees more than max_batch images
        assert result.timing.batch_images == 10
        # rows in order
        np.testing.assert_array_equal(result.outputs.latent[:, 0, 0], np.arange(10) * 2)
        np.testing.assert_array_equal(result.outputs.probabilities, np.arange(10) * 784)
        await batcher.close()

    run(scenario())


def test_one_bad_item_fails_only_its_own_request() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=64, max_delay_s=0.05, max_queue=100)
        fn.gate.clear()
        blocker = asyncio.create_task(batcher.submit(Job.of(images(1))))
        await asyncio.sleep(0.05)
        good = [asyncio.create_task(batcher.submit(Job.of(images(v)))) for v in (5, 6)]
        bad = asyncio.create_task(batcher.submit(Job.of(images(255))))
        await asyncio.sleep(0.05)
        fn.gate.set()
        await blocker
        assert [(await g).outputs.latent[0, 0, 0] for g in good] == [10, 12]
        with pytest.raises(ValueError, match="poison"):
            await bad
        await batcher.close()

    run(scenario())


def test_work_for_a_cancelled_request_is_dropped() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=64, max_delay_s=0.0, max_queue=100)
        fn.gate.clear()
        blocker = asyncio.create_task(batcher.submit(Job.of(images(1))))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(batcher.submit(Job.of(images(7, 5))))
        kept = asyncio.create_task(batcher.submit(Job.of(images(8, 2))))
        await asyncio.sleep(0.05)
        gone.cancel()  # the client went away
        fn.gate.set()
        await blocker
        await kept
        assert fn.calls == [1, 2]  # the cancelled request's 5 images never ran
        await batcher.close()

    run(scenario())


def test_the_queue_is_bounded() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=8, max_delay_s=0.0, max_queue=10)
        fn.gate.clear()
        blocker = asyncio.create_task(batcher.submit(Job.of(images(1))))
        await asyncio.sleep(0.05)
        # The pipeline holds one more batch, decoded and waiting for the model...
        decoded = asyncio.create_task(batcher.submit(Job.of(images(2, 8))))
        await asyncio.sleep(0.05)
        assert batcher.queued_images == 0
        # ...and everything after it waits in the bounded queue.
        waiting = asyncio.create_task(batcher.submit(Job.of(images(4, 8))))
        await asyncio.sleep(0.01)
        assert batcher.queued_images == 8
        with pytest.raises(QueueFull, match="max_queue"):
            await batcher.submit(Job.of(images(3, 3)))
        fn.gate.set()
        await asyncio.gather(blocker, decoded, waiting)
        assert batcher.queued_images == 0
        await batcher.close()

    run(scenario())


def test_a_retired_batcher_drains_its_queue_then_stops() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=2, max_delay_s=0.0, max_queue=100)
        fn.gate.clear()
        tasks = [asyncio.create_task(batcher.submit(Job.of(images(v)))) for v in (1, 2, 3, 4, 5)]
        await asyncio.sleep(0.05)
        batcher.retire()
        fn.gate.set()
        results = await asyncio.gather(*tasks)
        assert [r.outputs.latent[0, 0, 0] for r in results] == [2, 4, 6, 8, 10]
        await asyncio.sleep(0.05)
        assert not batcher.worker_running

    run(scenario())


def test_a_job_that_fails_to_decode_fails_alone_and_decoding_is_off_the_loop() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=64, max_delay_s=0.05, max_queue=100)
        decoded_in: list[threading.Thread] = []

        def decode(value: int) -> np.ndarray:
            decoded_in.append(threading.current_thread())
            if value < 0:
                raise ValueError("undecodable")
            return images(value)

        fn.gate.clear()
        blocker = asyncio.create_task(batcher.submit(Job.of(images(1))))
        await asyncio.sleep(0.05)
        jobs = [Job(1, lambda v=v: decode(v)) for v in (5, -1, 6)]  # type: ignore[misc]
        tasks = [asyncio.create_task(batcher.submit(job)) for job in jobs]
        await asyncio.sleep(0.05)
        fn.gate.set()
        await blocker
        good_a, bad, good_b = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(bad, ValueError)
        assert good_a.outputs.latent[0, 0, 0] == 10  # type: ignore[union-attr]
        assert good_b.outputs.latent[0, 0, 0] == 12  # type: ignore[union-attr]
        assert fn.calls == [1, 2]  # the two good jobs still shared one call
        assert threading.main_thread() not in decoded_in
        await batcher.close()

    run(scenario())


def test_the_next_batch_decodes_while_the_model_runs() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=8, max_delay_s=0.0, max_queue=100)
        fn.gate.clear()  # the first model call is held
        first = asyncio.create_task(batcher.submit(Job.of(images(1))))
        await asyncio.sleep(0.05)
        decoded = threading.Event()

        def prepare() -> np.ndarray:
            decoded.set()
            return images(2, 3)

        second = asyncio.create_task(batcher.submit(Job(3, prepare)))
        await asyncio.sleep(0.05)
        assert decoded.is_set() and fn.calls == []  # decoded before the held call finished
        fn.gate.set()
        await asyncio.gather(first, second)
        assert fn.calls == [1, 3]  # model calls still one at a time, in order
        await batcher.close()

    run(scenario())


def test_a_killed_worker_fails_its_waiters_then_restarts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the worker (here: its decode stage raising) ends the worker task: whoever
    waited on it fails at once with a 500, the failure is logged, and the next request is
    served by a new worker."""
    import app.pipeline.batcher

    real_prepare = app.pipeline.batcher._prepare
    kills = [RuntimeError("bug in the worker")]

    def prepare_once_broken(batch):  # type: ignore[no-untyped-def]
        if kills:
            raise kills.pop()
        return real_prepare(batch)

    monkeypatch.setattr(app.pipeline.batcher, "_prepare", prepare_once_broken)

    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=8, max_delay_s=0.0, max_queue=100)
        with pytest.raises(ServiceError, match="batch worker failed") as info:
            await asyncio.wait_for(batcher.submit(Job.of(images(1))), timeout=5)
        assert info.value.status_code == 500
        await asyncio.sleep(0.2)  # the supervisor's restart delay
        assert batcher.worker_running
        result = await asyncio.wait_for(batcher.submit(Job.of(images(3))), timeout=5)
        assert result.outputs.latent[0, 0, 0] == 6
        assert fn.calls == [1]  # the failed request never reached the model
        await batcher.close()

    with caplog.at_level(logging.ERROR, logger="app.pipeline.supervision"):
        run(scenario())
    assert any("bug in the worker" in r.getMessage() for r in caplog.records)


def test_a_cancelled_worker_is_restarted_and_queued_work_is_not_lost_silently() -> None:
    async def scenario() -> None:
        fn = Recorder()
        batcher = Batcher(fn, max_batch=8, max_delay_s=0.0, max_queue=100)
        fn.gate.clear()
        held = asyncio.create_task(batcher.submit(Job.of(images(1))))  # in the model call
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(batcher.submit(Job.of(images(2))))
        await asyncio.sleep(0.05)
        batcher._worker.task.cancel()  # type: ignore[union-attr]  # killed from outside
        for waiter in (held, queued):
            with pytest.raises(ServiceError, match="batch worker failed"):
                await asyncio.wait_for(waiter, timeout=5)
        fn.gate.set()
        result = await asyncio.wait_for(batcher.submit(Job.of(images(4))), timeout=5)
        assert result.outputs.latent[0, 0, 0] == 8
        assert batcher.queued_images == 0
        await batcher.close()

    run(scenario())
