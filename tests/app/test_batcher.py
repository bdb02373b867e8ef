"""The dynamic batcher's logic, with a plain numpy function standing in for the model."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from app.batcher import Batcher, Job
from app.errors import QueueFull


class Recorder:
    """Doubles its input; records each call's batch size; can be held to let work pile up."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        self.gate.wait(timeout=10)
        if (images == 255).any():
            raise ValueError("poison image")
        self.calls.append(len(images))
        return (images.astype(np.float32) * 2, images.sum(axis=(1, 2)))


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
        for value, (_, (doubled, sums), _) in zip((1, 2, 3, 4), results, strict=True):
            assert doubled.shape == (value, 28, 28)
            assert (doubled == value * 2).all()
            assert (sums == value * 784).all()
        assert results[1][2].batch_images == 9
        await batcher.close()

    run(scenario())


def test_a_lone_request_does_not_wait_for_the_max_delay() -> None:
    async def scenario() -> None:
        batcher = Batcher(Recorder(), max_batch=64, max_delay_s=60, max_queue=100)
        # With a 60 s max delay, finishing at all within 10 s means it did not wait.
        (_, _, timing) = await asyncio.wait_for(batcher.submit(Job.of(images(1))), timeout=10)
        assert timing.batch_images == 1
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
        _, (doubled, sums), timing = await batcher.submit(job)
        assert fn.calls == [4, 4, 2]  # the model never sees more than max_batch images
        assert timing.batch_images == 10
        np.testing.assert_array_equal(doubled[:, 0, 0], np.arange(10) * 2)  # rows in order
        np.testing.assert_array_equal(sums, np.arange(10) * 784)
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
        assert [(await g)[1][0][0, 0, 0] for g in good] == [10, 12]
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
        assert [r[1][0][0, 0, 0] for r in results] == [2, 4, 6, 8, 10]
        await asyncio.sleep(0.05)
        assert batcher._worker is not None and batcher._worker.done()

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
        assert good_a[1][0][0, 0, 0] == 10 and good_b[1][0][0, 0, 0] == 12  # type: ignore[index]
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
