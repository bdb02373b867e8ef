"""Peer: BentoML 1.4, one worker, with (PEER_BATCHING=1) or without adaptive batching.

    bentoml serve bentoml_service:Classifier --port N

The image arrives as a multipart upload that BentoML hands over as a PIL image; with
batching, its dispatcher gathers requests into one list (one model call per batch).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
from composed import Classifier as Model
from composed import answer
from PIL.Image import Image

BATCHING = os.environ.get("PEER_BATCHING") == "1"
MAX_BATCH = 128
# BentoML's dispatcher refuses requests it predicts would miss this; a tight value sheds load.
MAX_LATENCY_MS = 10_000


def _pixels(image: Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.uint8)


@bentoml.service(workers=1, traffic={"timeout": 30})
class Classifier:
    def __init__(self) -> None:
        self.model = Model()

    if BATCHING:

        @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
        def classify(self, images: list[Image]) -> list[dict[str, Any]]:
            return answer(self.model.classify(np.stack([_pixels(i) for i in images])))

    else:

        @bentoml.api
        def classify(self, images: Image) -> dict[str, Any]:
            return answer(self.model.classify(_pixels(images)[None]))[0]
