"""Runners: the seam between routes and the model, `run(model, operation, job) -> Result`.

Every operation makes exactly one encoder pass per image and feeds its latents on to the head
or decoder (`Model.run`). A request arrives as a `Job` whose images are decoded in the same
worker thread as the model call. `DirectRunner` gives each request its own thread hop and model
call (the unbatched baseline); `BatchingRunner` gathers concurrent requests into shared calls
(app.pipeline.batcher). Both implement the `Runner` protocol of app.core.jobs.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable
from functools import partial

from app.contract.errors import DeadlineExceeded
from app.core.jobs import Job, Model, Operation, Result, Runner, Timing
from app.http.metrics import Metrics
from app.pipeline.batcher import Batcher
from app.settings import Settings


async def within_deadline(work: Awaitable[Result], timeout_s: float) -> Result:
    """`work`'s result, or DeadlineExceeded once the timeout (queue time included) passes.

    A request cut off while queued is cancelled, so the batcher drops its work. (A timeout
    scope, not `asyncio.wait_for`, which on Python 3.11 wraps the work in one more task.)
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError:
        raise DeadlineExceeded(
            f"no result within {timeout_s * 1000:.0f} ms (request_timeout_ms)"
        ) from None


async def run_alone(model: Model, operation: Operation, job: Job) -> Result:
    """Decode and call the model in one worker thread, for this job alone."""
    submitted = time.perf_counter()

    def decode_and_call() -> Result:
        images = job.prepare()
        started = time.perf_counter()
        outputs = model.run(operation, images)
        elapsed = time.perf_counter() - started
        return Result(images, outputs, Timing(started - submitted, elapsed, len(images)))

    return await asyncio.to_thread(decode_and_call)


class DirectRunner:
    """Unbatched: one model call per request, off the event loop."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def run(self, model: Model, operation: Operation, job: Job) -> Result:
        return await within_deadline(run_alone(model, operation, job), self.timeout_s)

    def retire(self, model: Model) -> None:
        """Nothing to release without batchers."""

    async def close(self) -> None:
        """Nothing to release."""


class BatchingRunner:
    """One dynamic batcher per (model version, operation), created on first use.

    Every method runs on the event loop (hot swaps retire versions there too), so looking up
    or creating a batcher and retiring a version never interleave.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.timeout_s = settings.request_timeout_ms / 1000
        self._settings = settings
        self._metrics = metrics
        self._batchers: dict[tuple[str, int, Operation], Batcher] = {}
        # By identity: a version that is retired, then served again later (say, the newest
        # directory was deleted), comes back as a new object with batchers of its own.
        self._retired: weakref.WeakSet[Model] = weakref.WeakSet()

    def _batcher(self, model: Model, operation: Operation) -> Batcher:
        key = (model.name, model.version, operation)
        if key not in self._batchers:
            self._batchers[key] = Batcher(
                partial(model.run, operation),
                max_batch=self._settings.max_batch_images,
                max_delay_s=self._settings.max_batch_delay_ms / 1000,
                max_queue=self._settings.max_queue_images,
                stats=self._metrics.batch_stats(model.name, model.version, operation),
                name=f"batcher {model.name}/{model.version}/{operation}",
            )
        return self._batchers[key]

    async def run(self, model: Model, operation: Operation, job: Job) -> Result:
        if model in self._retired:
            # A request that picked a version just before it was retired: serve it alone.
            work = run_alone(model, operation, job)
        else:
            work = self._batcher(model, operation).submit(job)
        return await within_deadline(work, self.timeout_s)

    def retire(self, model: Model) -> None:
        """Let the version's batchers drain and stop, so its model can be freed."""
        self._retired.add(model)
        for key in [k for k in self._batchers if k[:2] == (model.name, model.version)]:
            self._batchers.pop(key).retire()

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
        self._batchers.clear()


def make_runner(settings: Settings, metrics: Metrics) -> Runner:
    if settings.batching:
        return BatchingRunner(settings, metrics)
    return DirectRunner(settings.request_timeout_ms / 1000)
