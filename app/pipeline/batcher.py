"""Server-side dynamic batching: images from concurrent requests share one model call.

One `Batcher` per (model version, operation). Requests put a `Job` (their still-encoded
images) on a bounded queue and await a future; a single worker task takes what is queued
(counting images, not requests, up to `max_batch`), decodes every job in a worker thread,
makes one model call in another, then hands each request its own rows. Thread hops per batch
instead of per request keep the GIL hand-offs, which dominated under load, per batch too; and
the next batch decodes while the current one is in the model.

No added latency when idle: the worker never waits for a lone request. While a call is
running, new requests queue up and form the next batch by themselves; `max_delay_s` (0 by
default, as in Triton) only lets a batch that is still filling wait a little for more company
under load. Under a closed loop that wait is idle time: every client is already in the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.contract.errors import QueueFull, ServiceError
from app.core.jobs import Job, Outputs, Result, Timing
from app.pipeline.supervision import Supervised

logger = logging.getLogger(__name__)

BatchFn = Callable[[np.ndarray], Outputs]


@dataclass
class _Item:
    job: Job
    future: asyncio.Future[Result]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Hooks for metrics; the default does nothing."""

    on_batch: Callable[[int, float], None] = lambda images, seconds: None
    on_depth: Callable[[int], None] = lambda depth: None
    on_queued: Callable[[float], None] = lambda seconds: None  # per request


@dataclass(frozen=True)
class _Called:
    """One model call's outputs for a batch, when it started and how long it ran."""

    started: float
    outputs: Outputs
    inference_s: float


Prepared = np.ndarray | Exception  # a job's decoded images, or why they did not decode


def _prepare(batch: list[_Item]) -> list[Prepared]:
    """In a worker thread: decode each job; a bad one fails alone, later, not the batch."""
    prepared: list[Prepared] = []
    for item in batch:
        try:
            prepared.append(item.job.prepare())
        except Exception as err:
            prepared.append(err)
    return prepared


class Batcher:
    def __init__(
        self,
        fn: BatchFn,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        stats: BatchStats | None = None,
        name: str = "batcher",
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._stats = stats or BatchStats()
        self._queue: deque[_Item] = deque()
        self._queued_images = 0
        self._in_flight: list[list[_Item]] = []  # batches taken from the queue, not answered
        self._wakeup = asyncio.Event()
        self._worker = Supervised(name, self._run, on_failure=self._fail_waiters)
        self._retiring = False

    @property
    def queued_images(self) -> int:
        return self._queued_images

    async def submit(self, job: Job) -> Result:
        """The job's images, their rows of every output, and how long they waited and ran."""
        if self._queued_images + job.count > self.max_queue:
            raise QueueFull(
                f"batch queue full ({self._queued_images} images waiting, max_queue "
                f"{self.max_queue}); retry shortly"
            )
        self._worker.start()  # no-op while it runs; starts it on first use
        item = _Item(job, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._queued_images += job.count
        self._stats.on_depth(self._queued_images)
        self._wakeup.set()
        return await item.future

    def _take(self, batch: list[_Item]) -> None:
        """Move queued items into `batch` while they fit in max_batch images.

        The first item always fits, so an oversize request runs alone rather than never.
        """
        count = sum(item.job.count for item in batch)
        while self._queue:
            item = self._queue[0]
            if not item.future.done() and batch and count + item.job.count > self.max_batch:
                break
            self._queue.popleft()
            self._queued_images -= item.job.count
            if item.future.done():  # its request was cancelled (client gone): drop the work
                continue
            batch.append(item)
            count += item.job.count
        self._stats.on_depth(self._queued_images)

    async def _gather(self, batch: list[_Item]) -> None:
        self._take(batch)
        if len(batch) <= 1 or self._queue:
            return  # a lone request never waits; a full batch goes at once
        # Several requests arrived together: under load, wait briefly for more.
        deadline = time.perf_counter() + self.max_delay_s
        while not self._queue and (remaining := deadline - time.perf_counter()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
            self._take(batch)

    def retire(self) -> None:
        """Finish what is queued, then stop the worker (its model version was replaced)."""
        self._retiring = True
        self._wakeup.set()

    @property
    def worker_running(self) -> bool:
        return self._worker.running

    def _fail_waiters(self, error: BaseException) -> None:
        """The worker died: every request it held or had queued fails now, not at its
        deadline; the restarted worker starts from an empty queue."""
        self._queued_images = 0
        self._stats.on_depth(0)
        waiting = [item for batch in self._in_flight for item in batch] + list(self._queue)
        self._queue.clear()
        self._in_flight.clear()
        failure = ServiceError(f"the batch worker failed ({type(error).__name__}); retry")
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(failure)

    async def _run(self) -> None:
        """Two-stage pipeline: decode batch n+1 while batch n's model call runs.

        Decoding holds the GIL while TensorFlow's call mostly releases it, so overlapping the
        two keeps both cores busy; model calls still run one at a time, in order. A batch that
        finds no call running decodes and calls in one thread hop instead of two: a lone
        request (one connection) then pays one hop, as a plain per-request route does.
        """
        calling: asyncio.Task[None] | None = None
        try:
            while True:
                if calling is not None and calling.done():
                    await calling  # a call that died kills the worker: its waiters fail now
                    calling = None
                if not self._queue:
                    if self._retiring:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch: list[_Item] = []
                self._in_flight.append(batch)  # from here on, a dying worker fails it
                await self._gather(batch)
                if not batch:
                    self._in_flight.remove(batch)
                    continue
                if calling is None:
                    calling = asyncio.create_task(self._answer(batch, None))
                else:
                    prepared = await asyncio.to_thread(_prepare, batch)
                    await calling
                    calling = asyncio.create_task(self._answer(batch, prepared))
                calling.add_done_callback(self._wake_on_failure)
            if calling is not None:
                await calling  # retiring: finish the last call, then stop
        finally:
            if calling is not None and not calling.done():  # close(): stop waiting for it
                calling.cancel()
                await asyncio.gather(calling, return_exceptions=True)

    def _wake_on_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._wakeup.set()

    @staticmethod
    def _split(
        batch: list[_Item], prepared: list[Prepared]
    ) -> tuple[list[_Item], list[np.ndarray]]:
        """Fail the requests whose images did not decode; the others, with their images."""
        items, images = [], []
        for item, decoded in zip(batch, prepared, strict=True):
            if isinstance(decoded, Exception):
                if not item.future.done():
                    item.future.set_exception(decoded)
            else:
                items.append(item)
                images.append(decoded)
        return items, images

    async def _answer(self, batch: list[_Item], prepared: list[Prepared] | None) -> None:
        """Answer a batch, decoding it first (in the call's thread) unless `prepared`."""
        if prepared is None:
            decodes, called = await asyncio.to_thread(self._decode_and_call, batch)
            items, decoded = self._split(batch, decodes)
            await self._deliver(items, decoded, called)
        else:
            items, decoded = self._split(batch, prepared)
            await self._call(items, decoded)
        # Only once answered: a call cut off with its worker leaves the batch to _fail_waiters.
        self._in_flight.remove(batch)

    async def _call(self, items: list[_Item], decoded: list[np.ndarray]) -> None:
        """One model call for the requests still waiting, then each gets its rows."""
        wanted = [i for i, item in enumerate(items) if not item.future.done()]  # client left
        items, decoded = [items[i] for i in wanted], [decoded[i] for i in wanted]
        if items:
            called = await asyncio.to_thread(self._guarded_call, decoded)
            await self._deliver(items, decoded, called)

    async def _deliver(
        self, items: list[_Item], decoded: list[np.ndarray], called: _Called | Exception | None
    ) -> None:
        if called is None:  # nothing decoded
            return
        if isinstance(called, Exception):
            if len(items) == 1:
                if not items[0].future.done():
                    items[0].future.set_exception(called)
                return
            # So that one bad item fails only its own request, retry each request alone.
            logger.warning(
                "batched call failed (%s); retrying %d requests alone", called, len(items)
            )
            for item, images in zip(items, decoded, strict=True):
                await self._call([item], [images])
            return
        count = sum(len(images) for images in decoded)
        self._stats.on_batch(count, called.inference_s)
        offset = 0
        for item, images in zip(items, decoded, strict=True):
            rows = slice(offset, offset + len(images))
            offset += len(images)
            if not item.future.done():
                timing = Timing(called.started - item.enqueued, called.inference_s, count)
                self._stats.on_queued(timing.queue_s)
                item.future.set_result(Result(images, called.outputs.rows(rows), timing))

    def _decode_and_call(
        self, batch: list[_Item]
    ) -> tuple[list[Prepared], _Called | Exception | None]:
        """In a worker thread: decode the batch, then call the model on what decoded."""
        prepared = _prepare(batch)
        decoded = [p for p in prepared if not isinstance(p, Exception)]
        return prepared, self._guarded_call(decoded) if decoded else None

    def _guarded_call(self, decoded: list[np.ndarray]) -> _Called | Exception:
        try:
            return self._timed_call(decoded)
        except Exception as err:  # handed to the loop, which fails or retries its requests
            return err

    def _timed_call(self, decoded: list[np.ndarray]) -> _Called:
        images = np.concatenate(decoded)
        started = time.perf_counter()
        # A request with more images than max_batch forms a batch alone; calling the model on
        # at most max_batch images at a time bounds the activations' memory all the same.
        calls = [
            self._fn(images[i : i + self.max_batch]) for i in range(0, len(images), self.max_batch)
        ]
        return _Called(started, Outputs.concat(calls), time.perf_counter() - started)

    async def close(self) -> None:
        await self._worker.stop()
