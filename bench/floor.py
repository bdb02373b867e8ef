"""The service's own request path with the model taken out: the floor under any batcher.

`uvicorn --factory bench.floor:app_from_env` serves the real app (settings, middlewares,
routes, multipart parsing, image decoding, response schemas, the repository's manifests) with
models that answer zeros of the right shapes instead of calling TensorFlow, and a runner that
decodes each request's images on the event loop, without a thread hop. Its req/s bounds what
one worker can serve however well the model calls are batched: batching only removes
model-call cost. TensorFlow is never imported, so its memory is the request path's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from app.contract.repository import Manifest
from app.core.jobs import Job, Model, NamedByManifest, Operation, Outputs, Result, Timing
from app.logs import configure_logging
from app.main import create_app
from app.pipeline.runner import within_deadline
from app.settings import Settings


@dataclass(frozen=True, eq=False)
class ZeroModel(NamedByManifest):
    """A Model whose every output is zeros (probabilities uniform) of the manifest's shapes."""

    manifest: Manifest
    index: None = None  # no /similar on the floor
    space: None = None  # nor compact encodings

    def run(self, operation: Operation, pixels: np.ndarray) -> Outputs:
        n = len(pixels)
        if operation == "embed":
            return Outputs(latent=np.zeros((n, self.manifest.latent_dim), np.float32))
        classes = len(self.manifest.class_names)
        probabilities = np.full((n, classes), 1 / classes, np.float32)
        if operation == "classify":
            return Outputs(probabilities=probabilities)
        shape = (n, *self.manifest.input_shape)
        rebuilt = Outputs(
            reconstruction=np.zeros(shape, np.float32), pixels=np.zeros(shape, np.uint8)
        )
        if operation == "reconstruct":
            return rebuilt
        latent = np.zeros((n, self.manifest.latent_dim), np.float32)
        return Outputs(latent, probabilities, rebuilt.reconstruction, rebuilt.pixels)


def load_zero_model(path: Path, manifest: Manifest) -> Model:
    return ZeroModel(manifest)


class InlineRunner:
    """Decodes and 'runs' each job right on the event loop: no thread hop, no batching; the
    deadline is kept, as the service's runners keep it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def run(self, model: Model, operation: Operation, job: Job) -> Result:
        return await within_deadline(self._inline(model, operation, job), self.timeout_s)

    @staticmethod
    async def _inline(model: Model, operation: Operation, job: Job) -> Result:
        started = time.perf_counter()
        images = job.prepare()
        outputs = model.run(operation, images)
        return Result(images, outputs, Timing(time.perf_counter() - started, 0.0, len(images)))

    def retire(self, model: Model) -> None:
        """Nothing to release."""

    async def close(self) -> None:
        """Nothing to release."""


def app_from_env() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)  # the access line, as served
    runner = InlineRunner(settings.request_timeout_ms / 1000)
    return create_app(settings, loader=load_zero_model, runner=runner)
