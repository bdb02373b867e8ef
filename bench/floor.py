"""The service's own request path with the model call taken out: the floor under any batcher.

`uvicorn --factory bench.floor:app_from_env` serves the real app (settings, middlewares,
routes, multipart parsing, image decoding, response schemas, real models loaded for their
manifests) with a runner that decodes each request's images on the event loop and returns
zeros of the right shapes instead of calling TensorFlow. Its req/s bounds what one worker can
serve however well the model calls are batched: batching only removes model-call cost.
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import FastAPI

from app.batcher import Job, Result, Timing
from app.inference import ModelVersion
from app.main import create_app
from app.runner import Operation, Runner
from app.settings import Settings


class NoModelRunner(Runner):
    """Decodes like the real runners, then answers with zeros: no thread hop, no model."""

    async def _run(self, model: ModelVersion, operation: Operation, job: Job) -> Result:
        started = time.perf_counter()
        images = job.prepare()
        n = len(images)
        outputs: tuple[np.ndarray, ...]
        if operation == "embed":
            outputs = (np.zeros((n, model.manifest.latent.dim), np.float32),)
        elif operation == "classify":
            outputs = (np.full((n, len(model.manifest.class_names)), 0.1, np.float32),)
        else:
            shape = (n, *model.manifest.input_shape)
            outputs = (np.zeros(shape, np.float32), np.zeros(shape, np.uint8))
        return images, outputs, Timing(time.perf_counter() - started, 0.0, n)


def app_from_env() -> FastAPI:
    settings = Settings()
    return create_app(settings, runner=NoModelRunner(settings.request_timeout_ms / 1000))
