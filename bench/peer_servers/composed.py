"""What every peer server calls: the exported encoder and head as one graph, as latentserve.

Runs in the peers' own virtualenvs (bench/peers.py makes them), so it imports nothing from
latentserve: it reads the version directory's SavedModels the way any TensorFlow user would,
chains encoder -> classifier in one `tf.function` (latentserve's composed call), and decodes a
PNG with Pillow to the uint8 (28, 28) the encoder takes. The benchmark's images are 28x28
Fashion-MNIST test images, which need no resizing or polarity change.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

MODEL_DIR_ENV = "PEER_MODEL_DIR"  # a version directory: encoder/, classifier/, manifest.json


class Classifier:
    def __init__(self, version_dir: str | None = None) -> None:
        path = Path(version_dir or os.environ[MODEL_DIR_ENV])
        # The loaded modules own the variables: keep them as long as the functions.
        self._modules = [
            tf.saved_model.load(str(path / part)) for part in ("encoder", "classifier")
        ]
        encoder, head = (module.signatures["serving_default"] for module in self._modules)

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8)])
        def classify(pixels: tf.Tensor) -> tf.Tensor:
            return head(latent=encoder(pixels=pixels)["latent"])["probabilities"]

        self._classify = classify
        self.classify(np.zeros((1, 28, 28), np.uint8))  # warm up, as latentserve does

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) -> float32 probabilities (n, classes)."""
        return np.asarray(self._classify(tf.constant(pixels)))


def decode_png(data: bytes) -> np.ndarray:
    """PNG (or any Pillow format) bytes -> uint8 (28, 28) grayscale."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.uint8)


def answer(probabilities: np.ndarray) -> list[dict[str, Any]]:
    """One row per image: the label and its probabilities, as the peers return them."""
    return [
        {"label": int(row.argmax()), "probabilities": row.astype(float).tolist()}
        for row in probabilities
    ]
