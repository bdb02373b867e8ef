"""The one module in app/ that imports TensorFlow: load a model version, run its graphs.

A version directory holds three SavedModels (encoder, decoder, classifier) whose
`serving_default` signatures are described in its manifest. Calls here are blocking; the
caller runs them off the event loop.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from app.core.jobs import NamedByManifest, Operation, Outputs
from app.contract.embedding import EmbeddingSpace
from app.contract.ood import OodScorer
from app.contract.repository import OPERATION_HEADS, PARTS, Manifest
from app.contract.similarity import GraphCache, SimilarityIndex
from app.models.loaded import Extras, handed_on, limit_blas_threads, warm_up

logger = logging.getLogger(__name__)
KERAS_EAGER_IMPORT = "keras.src.optimizers"


def _tensorflow_without_keras() -> ModuleType:
    """`import tensorflow`, minus the Keras import its `__init__` makes eagerly.

    TensorFlow imports `keras.src.optimizers` at import time, with all of Keras (and, where
    they are installed, matplotlib and scikit-learn) behind it, for registrations that Keras
    models need; the service only calls SavedModel signatures. A `None` in sys.modules makes
    that one import fail at once, which TensorFlow catches and skips: 170 MB and 1,700 modules
    less per worker (docs/benchmarks.md, bench/memory.py). Removed again right after, so Keras
    imports normally later in the same process (training, tests).
    """
    blocked = KERAS_EAGER_IMPORT not in sys.modules
    if blocked:
        sys.modules[KERAS_EAGER_IMPORT] = None  # type: ignore[assignment]
    try:
        import tensorflow
    finally:
        if blocked and sys.modules.get(KERAS_EAGER_IMPORT, ...) is None:
            del sys.modules[KERAS_EAGER_IMPORT]
    module: ModuleType = tensorflow
    return module


tf = _tensorflow_without_keras()


def configure_threads(intra_op: int) -> None:
    """TensorFlow's intra-op threads and NumPy's BLAS threads (the ood score's projection),
    before TensorFlow's first op; 0 keeps both libraries' own choice (one per core).

    Both pools' idle threads spin for a while after each call: at 32 connections two of each
    kept 1.8 cores busy for what one thread each does with 1.0 (docs/benchmarks.md). A process
    whose TensorFlow already runs (a second app in one process: tests, tools) keeps its
    TensorFlow setting.
    """
    if not intra_op:
        return
    limit_blas_threads(intra_op)
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == intra_op:
        return
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # "cannot be modified after initialization"
        logger.warning(
            "TensorFlow is already initialised in this process; inference_threads=%d not applied",
            intra_op,
        )


@dataclass(eq=False)  # compared and hashed by identity, as Model asks
class ModelVersion(NamedByManifest):
    """A loaded, warmed-up model version (app.core.jobs.Model). Array in, array out; thread-safe
    (TensorFlow functions)."""

    manifest: Manifest
    path: Path
    _functions: dict[str, Any]
    _modules: list[Any]  # loaded SavedModels: their variables live as long as these do
    _composed: dict[str, Any]
    index: SimilarityIndex | None = None
    ood: OodScorer | None = None
    space: EmbeddingSpace | None = None

    def run(self, operation: Operation, pixels: np.ndarray) -> Outputs:
        """uint8 (n, 28, 28) -> the operation's outputs, in one graph call; with them, for a
        calibrated version, each image's ood_score (from the same latents)."""
        if operation == "embed":
            return Outputs(latent=self.encode(pixels))
        made = {k: v.numpy() for k, v in self._composed[operation](tf.constant(pixels)).items()}
        return handed_on(operation, made, self.ood)

    def _call(self, part: str, value: np.ndarray) -> dict[str, np.ndarray]:
        (input_name,) = self.manifest.signatures[part].inputs
        outputs = self._functions[part](**{input_name: tf.constant(value)})
        return {key: tensor.numpy() for key, tensor in outputs.items()}

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) -> float32 (n, latent_dim)."""
        return self._call("encoder", pixels)["latent"]

    def classify_latents(self, latents: np.ndarray) -> np.ndarray:
        """float32 (n, latent_dim) -> class probabilities (n, classes)."""
        return self._call("classifier", latents)["probabilities"]

    def decode_latents(self, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (n, latent_dim) -> (0-1 float reconstruction, uint8 pixels), (n, 28, 28)."""
        outputs = self._call("decoder", latents)
        return outputs["reconstruction"], outputs["pixels"]

    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, 28, 28) -> probabilities: encoder and head in one graph call."""
        probabilities = self.run("classify", pixels).probabilities
        assert probabilities is not None  # the classify graph makes them
        return probabilities

    def reconstruct(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (n, 28, 28) -> decoder outputs: encoder and decoder in one graph call."""
        outputs = self.run("reconstruct", pixels)
        assert outputs.reconstruction is not None and outputs.pixels is not None
        return outputs.reconstruction, outputs.pixels


def _compose(functions: dict[str, Any], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """encoder -> head, encoder -> decoder, and encoder -> both (with the latent) as single
    graphs: one call, one latent pass.

    Each TensorFlow call from Python costs about half a millisecond here, whatever the batch;
    chaining inside one graph pays that once per batch instead of twice.
    """
    spec = tf.TensorSpec([None, *input_shape], tf.uint8, name="pixels")

    def chain(*heads: str) -> Any:
        def run(pixels: Any) -> dict[str, Any]:
            latent = functions["encoder"](pixels=pixels)["latent"]
            outputs = {"latent": latent}  # for the ood score, and for `full`
            for head in heads:
                outputs.update(functions[head](latent=latent))
            return outputs

        return tf.function(run, input_signature=[spec]).get_concrete_function()

    # `embed` is the encoder's own signature (ModelVersion.encode): nothing to compose.
    return {operation: chain(*heads) for operation, heads in OPERATION_HEADS.items() if heads}


def load_encoder(path: Path, manifest: Manifest) -> Callable[[np.ndarray], np.ndarray]:
    """A version's encoder alone, for bulk embedding on other machines
    (latentserve/ray_engine.py): uint8 (n, 28, 28) -> float32 (n, latent_dim), the call
    ModelVersion.encode makes."""
    function = tf.saved_model.load(str(path / "encoder")).signatures["serving_default"]
    (input_name,) = manifest.signatures["encoder"].inputs

    def encode(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(function(**{input_name: tf.constant(pixels)})["latent"].numpy())

    return encode


def load_version(
    path: Path, manifest: Manifest, graph_cache: GraphCache | None = None
) -> ModelVersion:
    """Load the three SavedModels (already checksum-verified), open or build the similarity
    index if the version has one (its graph from `graph_cache` when it is there), and answer
    one warm-up call per graph."""
    modules = {part: tf.saved_model.load(str(path / part)) for part in PARTS}
    functions = {part: module.signatures["serving_default"] for part, module in modules.items()}
    composed = _compose(functions, manifest.input_shape)
    extras = Extras.load(path, manifest, graph_cache)
    kept = list(modules.values())  # their variables live as long as the version
    model = ModelVersion(
        manifest, path, functions, kept, composed, extras.index, extras.ood, extras.space
    )
    warm_up(model, path, "TensorFlow")
    return model
