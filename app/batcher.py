"""Server-side dynamic batching: images from concurrent requests share one model call.

One `Batcher` per (model version, operation). Requests put a `Job` (their still-encoded
images) on a bounded queue and await a future; a single worker task takes what is queued
(counting images, not requests, up to `max_batch`) and, in one worker thread, decodes every
job and makes one model call, then hands each request its own rows. One thread hop per batch
instead of one per request keeps the GIL hand-offs, which dominated under load, per batch too.

No added latency when idle: the worker never waits for a lone request. While a call is
running, new requests queue up and form the next batch by themselves; `max_delay_s` only
lets a batch that is still filling wait a little for more company under load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.errors import QueueFull

logger = logging.getLogger(__name__)

Outputs = tuple[np.ndarray, ...]
BatchFn = Callable[[np.ndarray], Outputs]


@dataclass(frozen=True)
class Job:
    """A request's images: how many, and how to decode them (called in a worker thread)."""

    count: int
    prepare: Callable[[], np.ndarray]

    @classmethod
    def of(cls, images: np.ndarray) -> Job:
        """A job for images that are already decoded."""
        return cls(len(images), lambda: images)


Result = tuple[np.ndarray, Outputs, "Timing"]  # decoded images, their output rows, timing


@dataclass(frozen=True)
class Timing:
    queue_s: float
    """From submission until the model call starts; includes decoding the batch's images."""
    inference_s: float
    """The model call alone."""
    batch_images: int


@dataclass
class _Item:
    job: Job
    future: asyncio.Future[Result]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Done:
    """What the worker thread hands back: per item its images or its decode error."""

    prepared: list[np.ndarray | Exception]
    outputs: Outputs
    started: float
    inference_s: float


@dataclass
class BatchStats:
    """Hooks for metrics; the default does nothing."""

    on_batch: Callable[[int, float], None] = lambda images, seconds: None
    on_depth: Callable[[int], None] = lambda depth: None
    on_queued: Callable[[float], None] = lambda seconds: None  # per request


class Batcher:
    def __init__(
        self,
        fn: BatchFn,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        stats: BatchStats | None = None,
    ) -> None:
        self._fn = fn
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._stats = stats or BatchStats()
        self._queue: deque[_Item] = deque()
        self._queued_images = 0
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
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
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="batcher")
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

    async def _gather(self) -> list[_Item]:
        batch: list[_Item] = []
        self._take(batch)
        if len(batch) <= 1 or self._queue:
            return batch  # a lone request never waits; a full batch goes at once
        # Several requests arrived together: under load, wait briefly for more.
        deadline = time.perf_counter() + self.max_delay_s
        while not self._queue and (remaining := deadline - time.perf_counter()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
            self._take(batch)
        return batch

    def retire(self) -> None:
        """Finish what is queued, then stop the worker (its model version was replaced)."""
        self._retiring = True
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._retiring:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._gather()
            if batch:
                await self._execute(batch)

    def _prepare_and_call(self, batch: list[_Item]) -> _Done:
        """In the worker thread: decode each job (a bad one fails alone), then one model call."""
        prepared: list[np.ndarray | Exception] = []
        for item in batch:
            try:
                prepared.append(item.job.prepare())
            except Exception as err:
                prepared.append(err)
        images = [p for p in prepared if isinstance(p, np.ndarray)]
        started = time.perf_counter()
        outputs = self._fn(np.concatenate(images)) if images else ()
        return _Done(prepared, outputs, started, time.perf_counter() - started)

    async def _execute(self, batch: list[_Item]) -> None:
        try:
            done = await asyncio.to_thread(self._prepare_and_call, batch)
        except Exception as err:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(err)
                return
            # So that one bad item fails only its own request, retry each request alone.
            logger.warning("batched call failed (%s); retrying %d requests alone", err, len(batch))
            for item in batch:
                await self._execute([item])
            return
        images = sum(len(p) for p in done.prepared if isinstance(p, np.ndarray))
        if images:
            self._stats.on_batch(images, done.inference_s)
        offset = 0
        for item, prepared in zip(batch, done.prepared, strict=True):
            if isinstance(prepared, Exception):
                if not item.future.done():
                    item.future.set_exception(prepared)
                continue
            rows = slice(offset, offset + len(prepared))
            offset += len(prepared)
            if not item.future.done():
                timing = Timing(done.started - item.enqueued, done.inference_s, images)
                self._stats.on_queued(timing.queue_s)
                item.future.set_result((prepared, tuple(o[rows] for o in done.outputs), timing))

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
