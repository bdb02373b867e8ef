"""What every runtime's loaded version shares (TensorFlow-free): its optional parts, how its
graphs' outputs are handed on, and the warm-up check before it is served."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from app.contract.embedding import EmbeddingSpace
from app.contract.ood import OodScorer
from app.contract.repository import Manifest
from app.contract.similarity import GraphCache, SimilarityIndex
from app.core.jobs import OPERATIONS, Model, Operation, Outputs

logger = logging.getLogger(__name__)


def limit_blas_threads(threads: int) -> None:
    """NumPy's BLAS threads (the ood score's projection), for the whole process; 0 keeps the
    library's own choice (one per core), whose idle threads spin on cores others need."""
    if threads:
        threadpool_limits(limits=threads, user_api="blas")  # stays in force: not a `with`


@dataclass(frozen=True)
class Extras:
    """A version's optional parts: similarity index, ood calibration, embedding space."""

    index: SimilarityIndex | None
    ood: OodScorer | None
    space: EmbeddingSpace | None

    @classmethod
    def load(cls, path: Path, manifest: Manifest, graph_cache: GraphCache | None) -> Extras:
        """Each part the manifest lists (the index's graph from `graph_cache` when there)."""
        return cls(
            SimilarityIndex.load(path, manifest.index, graph_cache) if manifest.index else None,
            OodScorer.load(path, manifest.ood) if manifest.ood else None,
            EmbeddingSpace.load(path, manifest.embedding) if manifest.embedding else None,
        )


def handed_on(operation: Operation, made: dict[str, np.ndarray], ood: OodScorer | None) -> Outputs:
    """An operation graph's outputs as the service uses them: with each image's ood_score for
    a calibrated version (from the same latents); the latent itself only where the operation
    returns it (`embed`, `full`)."""
    if ood is not None and operation != "embed":
        made["ood_score"] = ood.score(made["latent"])
    if operation not in ("embed", "full"):
        del made["latent"]
    return Outputs(**made)


def warm_up(model: Model, path: Path, runtime: str) -> None:
    """One call per graph before the version is served, checking the latent's shape against
    the manifest; then the load is logged with its runtime."""
    manifest = model.manifest
    warm = np.zeros((1, *manifest.input_shape), dtype=np.uint8)
    latents = model.run("embed", warm).latent
    if latents is None or latents.shape != (1, manifest.latent_dim):
        shape = None if latents is None else latents.shape
        raise ValueError(
            f"{path}: encoder returned shape {shape}, manifest says (1, {manifest.latent_dim})"
        )
    for operation in OPERATIONS[1:]:  # after `embed`, above
        model.run(operation, warm)
    index = model.index
    graph = "none" if index is None else "opened from the cache" if index.from_cache else "built"
    logger.info(
        "loaded %s version %d from %s with %s (similarity graph: %s)",
        manifest.name,
        manifest.version,
        path,
        runtime,
        graph,
    )
