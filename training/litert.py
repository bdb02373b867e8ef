"""A version's LiteRT flatbuffers, so the service can serve it without TensorFlow.

Each operation's graph (app.contract.repository.OPERATION_HEADS: the encoder, its latent fed
to the heads) is composed from the exported SavedModels, as the service's TensorFlow runtime
composes it, and converted with TensorFlow's own converter (float32 kernels, no
quantisation). The parts are not converted one by one: the decoder alone loses its spatial
shapes and does not convert, while composed behind the encoder it does. Every flatbuffer is
checked against the SavedModels on parity images before the spec is returned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from app.contract.repository import OPERATION_HEADS, PARTS, LiteRTSpec, Manifest

logger = logging.getLogger(__name__)

LITERT_DIR = "litert"
PARITY_IMAGES = 64
FLOAT_TOLERANCE = 1e-3  # float32 kernels in another order: differences near 1e-6 seen
PIXEL_TOLERANCE = 1  # a reconstruction exactly between two uint8 steps may round either way


def _composed(version_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """Each operation's graph as a concrete function, with the loaded parts it calls."""
    parts = {part: tf.saved_model.load(str(version_dir / part)) for part in PARTS}
    functions = {part: module.signatures["serving_default"] for part, module in parts.items()}
    spec = tf.TensorSpec([None, *manifest.input_shape], tf.uint8, name="pixels")

    def chain(heads: tuple[str, ...]) -> Any:
        def run(pixels: Any) -> dict[str, Any]:
            latent = functions["encoder"](pixels=pixels)["latent"]
            outputs = {"latent": latent}
            for head in heads:
                outputs.update(functions[head](latent=latent))
            return outputs

        return tf.function(run, input_signature=[spec]).get_concrete_function()

    return {"parts": parts, **{op: chain(heads) for op, heads in OPERATION_HEADS.items()}}


def _parity_images(manifest: Manifest) -> np.ndarray:
    """Blank, saturated and noise images: every kernel path, without the training data."""
    rng = np.random.default_rng(0)
    shape = (PARITY_IMAGES, *manifest.input_shape)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    images[0], images[1] = 0, 255
    return images


def _difference(name: str, expected: np.ndarray, got: np.ndarray) -> float:
    if expected.shape != got.shape:
        raise ValueError(f"LiteRT output {name!r} has shape {got.shape}, not {expected.shape}")
    gap = float(np.abs(expected.astype(np.float64) - got.astype(np.float64)).max())
    tolerance = PIXEL_TOLERANCE if expected.dtype == np.uint8 else FLOAT_TOLERANCE
    if gap > tolerance:
        raise ValueError(f"LiteRT output {name!r} differs from the SavedModel's by {gap}")
    return gap if expected.dtype != np.uint8 else 0.0


def run_flatbuffer(content: bytes, pixels: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    interpreter = Interpreter(model_content=content, num_threads=1)
    (given,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(given["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], pixels)
    interpreter.invoke()
    made = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    return dict(zip(names, made, strict=True))


def write_litert(version_dir: Path, manifest: Manifest) -> LiteRTSpec:
    """Write <version>/litert/<operation>.tflite for every operation; its spec, once each
    flatbuffer's outputs match the SavedModels' on the parity images."""
    graphs = _composed(version_dir, manifest)
    images = _parity_images(manifest)
    (version_dir / LITERT_DIR).mkdir(exist_ok=True)
    files, outputs, worst = {}, {}, 0.0
    for operation in OPERATION_HEADS:
        function = graphs[operation]
        content = tf.lite.TFLiteConverter.from_concrete_functions(
            [function], graphs["parts"]["encoder"]
        ).convert()
        names = sorted(function.structured_outputs)  # the converter's (tf.nest) output order
        expected = {k: v.numpy() for k, v in function(tf.constant(images)).items()}
        got = run_flatbuffer(content, images, names)
        worst = max([worst, *(_difference(n, expected[n], got[n]) for n in names)])
        relative = f"{LITERT_DIR}/{operation}.tflite"
        (version_dir / relative).write_bytes(content)
        files[operation], outputs[operation] = relative, names
    logger.info("LiteRT graphs of %s: largest difference %.2e", version_dir, worst)
    return LiteRTSpec(files=files, outputs=outputs, max_difference=worst, converter=tf.__version__)
