"""The seam between routes and TensorFlow: `run(model, operation, job)`.

Every operation makes exactly one encoder pass per image and feeds its latents on to the head
or decoder. A request arrives as a `Job` whose images are decoded in the same worker thread
as the model call. `Runner` gives each request its own thread hop and model call (the
unbatched baseline); `BatchingRunner` gathers concurrent requests into shared calls
(app.batcher).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from app.batcher import Batcher, Job, Outputs, Result, Timing
from app.errors import DeadlineExceeded
from app.inference import ModelVersion
from app.metrics import Metrics
from app.settings import Settings

Operation = Literal["embed", "classify", "reconstruct"]

OPERATIONS: dict[str, Callable[[ModelVersion, np.ndarray], Outputs]] = {
    "embed": lambda model, images: (model.encode(images),),
    "classify": lambda model, images: (model.classify(images),),
    "reconstruct": lambda model, images: model.reconstruct(images),
}


class Runner:
    """Unbatched: one model call per request, off the event loop."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def run(self, model: ModelVersion, operation: Operation, job: Job) -> Result:
        """The decoded images and the operation's outputs, or DeadlineExceeded once the
        timeout (queue included) passes.

        A request cut off while queued is cancelled, so the batcher drops its work.
        """
        try:
            return await asyncio.wait_for(self._run(model, operation, job), self.timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(
                f"no result within {self.timeout_s * 1000:.0f} ms (request_timeout_ms)"
            ) from None

    async def _run(self, model: ModelVersion, operation: Operation, job: Job) -> Result:
        submitted = time.perf_counter()

        def decode_and_call() -> Result:
            images = job.prepare()
            started = time.perf_counter()
            outputs = OPERATIONS[operation](model, images)
            elapsed = time.perf_counter() - started
            return images, outputs, Timing(started - submitted, elapsed, len(images))

        return await asyncio.to_thread(decode_and_call)

    def retire(self, model: ModelVersion) -> None:
        """A newer version replaced `model`; nothing to do without batchers."""

    async def close(self) -> None:
        """Nothing to release."""


class BatchingRunner(Runner):
    """One dynamic batcher per (model version, operation), created on first use."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(settings.request_timeout_ms / 1000)
        self._settings = settings
        self._metrics = metrics
        self._batchers: dict[tuple[str, int, str], Batcher] = {}
        self._retired: set[tuple[str, int]] = set()

    def _batcher(self, model: ModelVersion, operation: Operation) -> Batcher:
        key = (model.name, model.version, operation)
        if key not in self._batchers:
            call = OPERATIONS[operation]
            self._batchers[key] = Batcher(
                lambda images: call(model, images),
                max_batch=self._settings.max_batch_images,
                max_delay_s=self._settings.max_batch_delay_ms / 1000,
                max_queue=self._settings.max_queue_images,
                stats=self._metrics.batch_stats(model.name, operation),
            )
        return self._batchers[key]

    async def _run(self, model: ModelVersion, operation: Operation, job: Job) -> Result:
        if (model.name, model.version) in self._retired:
            # A request that picked the old version just before a swap: serve it unbatched.
            return await super()._run(model, operation, job)
        return await self._batcher(model, operation).submit(job)

    def retire(self, model: ModelVersion) -> None:
        """Let the replaced version's batchers drain and stop, so its model can be freed."""
        self._retired.add((model.name, model.version))
        for key in [k for k in self._batchers if k[:2] == (model.name, model.version)]:
            self._batchers.pop(key).retire()

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
        self._batchers.clear()


def make_runner(settings: Settings, metrics: Metrics) -> Runner:
    if settings.batching:
        return BatchingRunner(settings, metrics)
    return Runner(settings.request_timeout_ms / 1000)
