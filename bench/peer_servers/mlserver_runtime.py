"""Peer: an MLServer 1.7 custom runtime (`mlserver.MLModel`), V2 protocol.

    mlserver start <folder with settings.json and model-settings.json>

bench/peers.py writes the folder: one parallel worker (MLServer still runs its main process
beside it), adaptive batching on (`max_batch_size`, `max_batch_time`) or off. Inputs: a BYTES
tensor of base64 PNGs, decoded with Pillow here, or a UINT8 (n, 28, 28) pixel tensor.
"""

from __future__ import annotations

import base64

import numpy as np
from composed import Classifier, decode_png
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


def _pixels(payload: InferenceRequest) -> np.ndarray:
    tensor = payload.inputs[0]
    data = tensor.data.root if hasattr(tensor.data, "root") else tensor.data
    if tensor.datatype == "BYTES":
        return np.stack([decode_png(base64.b64decode(value)) for value in data])
    return np.asarray(data, dtype=np.uint8).reshape(tensor.shape)


class PeerRuntime(MLModel):
    async def load(self) -> bool:
        self.model = Classifier()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        probabilities = self.model.classify(_pixels(payload))
        output = ResponseOutput(
            name="probabilities",
            shape=list(probabilities.shape),
            datatype="FP32",
            data=probabilities.ravel().tolist(),
        )
        return InferenceResponse(model_name=self.name, outputs=[output])
