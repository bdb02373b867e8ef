"""Peer: KServe 0.21's model server (`kserve.Model`), one worker, serving V1 and V2.

    python kserve_model.py --http_port N --workers 1

V1: `POST /v1/models/fashion-mnist:predict` with `{"instances": [{"b64": "<png>"}]}`.
V2: `POST /v2/models/fashion-mnist/infer`, a BYTES input holding the base64 PNG in JSON (its
binary-data extension refuses raw PNG bytes as a BYTES tensor). `predict` is a plain `def`, as
in KServe's examples: KServe calls it on its event loop, one model call per request.
"""

from __future__ import annotations

import base64
from typing import Any

import kserve
import numpy as np
from composed import Classifier, answer, decode_png
from kserve import InferOutput, InferRequest, InferResponse

NAME = "fashion-mnist"


def _png(value: Any) -> bytes:
    if isinstance(value, dict):  # V1 {"b64": ...}
        value = value["b64"]
    return base64.b64decode(value)


class PeerModel(kserve.Model):
    def __init__(self) -> None:
        super().__init__(NAME)
        self.model: Classifier | None = None

    def load(self) -> bool:
        self.model = Classifier()
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        assert self.model is not None
        if isinstance(payload, InferRequest):
            pngs = [_png(v) for v in payload.inputs[0].data]
        else:
            pngs = [_png(v) for v in payload["instances"]]
        probabilities = self.model.classify(np.stack([decode_png(p) for p in pngs]))
        if isinstance(payload, InferRequest):
            output = InferOutput("probabilities", list(probabilities.shape), "FP32")
            output.set_data_from_numpy(probabilities, binary_data=False)
            return InferResponse(payload.id or "", NAME, [output])
        return {"predictions": answer(probabilities)}


if __name__ == "__main__":
    model = PeerModel()
    model.load()
    kserve.ModelServer().start([model])
