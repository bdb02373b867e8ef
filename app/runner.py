"""The seam between routes and TensorFlow: async calls whose blocking work runs in a thread.

Every operation makes exactly one encoder pass per image and feeds its latents on to the
head or decoder. A server-side batcher can replace this class without touching the routes.
"""

from __future__ import annotations

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.inference import ModelVersion


def _classify(model: ModelVersion, images: np.ndarray) -> np.ndarray:
    return model.classify_latents(model.encode(images))


def _reconstruct(model: ModelVersion, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return model.decode_latents(model.encode(images))


class Runner:
    async def embed(self, model: ModelVersion, images: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) -> latents (n, dim)."""
        return await run_in_threadpool(model.encode, images)

    async def classify(self, model: ModelVersion, images: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) -> probabilities (n, classes)."""
        return await run_in_threadpool(_classify, model, images)

    async def reconstruct(
        self, model: ModelVersion, images: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (n, 28, 28) -> (0-1 reconstructions, uint8 pixels), both (n, 28, 28)."""
        return await run_in_threadpool(_reconstruct, model, images)
