"""Similarity search over a model version's reference images (`/similar`).

The index part of a version (`index/reference.npz`) holds, for every reference image, its
latent projected by a whitened PCA, unit-normalised and stored as int8, with its label and id;
the projection itself (mean and matrix) comes with it. Searching that space by cosine, as a
10-NN classifier, beat the raw 1568-dim latents on Fashion-MNIST's test split (87.9% against
87.4%) at a twenty-fourth of the size (docs/benchmarks.md). The approximate search is usearch's
HNSW graph, built from the stored vectors when the version loads, single-threaded so that
every worker and every restart builds the same graph and answers the same neighbours. The
graph is not shipped in the repository (four times the size of the vectors); instead, given
a cache directory, the export (training) or the first load saves it there under the
reference part's content hash, with the graph file's own hash beside it, and every later
load (a restart, a second worker, a reload) checks that hash and opens the file
memory-mapped, in milliseconds rather than the ~5-10 s a 60,000-image graph takes to build
(docs/benchmarks.md).

This module is also the file format's one definition: training writes the part with
`save_reference`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import BatchMatches, Index

from app.contract.repository import IndexSpec, file_sha256

logger = logging.getLogger(__name__)

QUANT_SCALE = 127  # unit-vector components in [-1, 1] stored as int8
UNLABELLED = -1
GRAPH_CACHE_DIR = ".index-cache"
"""The graph cache's default place, inside the repository (hidden: not a model)."""
GRAPH_FORMAT = 1  # bump when the way the graph is built changes: old cached graphs are unused


def project(latents: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Latents (n, D) -> unit vectors (n, d) in the index's space."""
    projected = (np.asarray(latents, np.float32) - mean) @ projection
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    return np.asarray(projected / np.where(norms == 0, 1, norms), np.float32)


def save_reference(
    path: Path,
    mean: np.ndarray,
    projection: np.ndarray,
    latents: np.ndarray,
    labels: np.ndarray | None,
    ids: list[str],
    images: np.ndarray | None = None,
) -> None:
    """Write the index part for reference `latents` (training and `python -m training index`),
    with the reference images themselves (uint8 (n, 28, 28)) when given."""
    vectors = project(latents, mean, projection)
    if labels is None:
        labels = np.full(len(ids), UNLABELLED)
    path.parent.mkdir(parents=True, exist_ok=True)
    optional: dict[str, Any] = {} if images is None else {"images": np.asarray(images, np.uint8)}
    with path.open("wb") as handle:
        np.savez_compressed(
            handle,
            mean=np.asarray(mean, np.float32),
            projection=np.asarray(projection, np.float32),
            vectors=np.clip(np.rint(vectors * QUANT_SCALE), -127, 127).astype(np.int8),
            labels=(
                np.full(len(ids), UNLABELLED, np.int16)
                if labels is None
                else labels.astype(np.int16)
            ),
            ids=np.asarray(ids, dtype=str),
            **optional,
        )


def _graph_key(part: bytes, spec: IndexSpec) -> str:
    """What a graph is built from: the stored vectors (the part's bytes) and the settings."""
    settings = (spec.metric, spec.dims, spec.connectivity, spec.expansion_add, GRAPH_FORMAT)
    digest = hashlib.sha256(f"{settings}".encode())
    digest.update(hashlib.sha256(part).hexdigest().encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Neighbours:
    """k nearest reference images of each query: rows of ids, distances and labels."""

    ids: list[list[str]]
    distances: list[list[float]]
    labels: list[list[int | None]]
    images: list[list[np.ndarray]] | None = None
    """uint8 (28, 28) each, when asked for and the index stores them."""


def _build_graph(spec: IndexSpec, vectors: np.ndarray) -> Index:
    index = Index(
        ndim=spec.dims,
        metric=spec.metric,
        dtype="f16",
        connectivity=spec.connectivity,
        expansion_add=spec.expansion_add,
        expansion_search=spec.expansion_search,
    )
    index.add(np.arange(len(vectors)), vectors, threads=1)
    return index


@dataclass(frozen=True)
class GraphCache:
    """Built HNSW graphs, one file each, named by what they were built from."""

    directory: Path

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.usearch", self.directory / f"{key}.sha256"

    def open(self, key: str, spec: IndexSpec) -> Index | None:
        """The cached graph, memory-mapped, if it is there whole and fits the spec."""
        graph, checksum = self._paths(key)
        if not graph.is_file() or not checksum.is_file():
            return None
        if file_sha256(graph) != checksum.read_text().strip():
            logger.warning("cached similarity graph %s is damaged; building it again", graph)
            return None
        index = Index.restore(str(graph), view=True)
        if index is None or len(index) != spec.size or index.ndim != spec.dims:
            logger.warning("cached similarity graph %s does not fit; building it again", graph)
            return None
        return index

    def save(self, key: str, index: Index) -> None:
        """Write the graph and its hash, each renamed into place (a reader never sees half);
        a cache that cannot be written is said once per load and otherwise ignored."""
        graph, checksum = self._paths(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = graph.with_name(f".{graph.name}.{os.getpid()}")
            index.save(str(partial))
            digest = file_sha256(partial)
            os.replace(partial, graph)
            partial_sum = checksum.with_name(f".{checksum.name}.{os.getpid()}")
            partial_sum.write_text(digest + "\n")
            os.replace(partial_sum, checksum)
        except OSError as err:
            logger.info("similarity graph not cached (%s): built at every load", err)


class SimilarityIndex:
    def __init__(
        self, spec: IndexSpec, reference: dict[str, np.ndarray], graph: Index | None = None
    ) -> None:
        self.spec = spec
        self._mean = reference["mean"]
        self._projection = reference["projection"]
        self._labels = reference["labels"]
        self._ids = reference["ids"]
        self._images = reference.get("images")
        self.from_cache = graph is not None
        if graph is None:  # the stored int8 vectors back to unit length, only to build
            graph = _build_graph(spec, reference["vectors"].astype(np.float32) / QUANT_SCALE)
        self._index = graph

    @classmethod
    def load(
        cls, version_dir: Path, spec: IndexSpec, cache: GraphCache | None = None
    ) -> SimilarityIndex:
        """Blocking: read the part (already checksum-verified), then open its graph from the
        cache or build it (and cache it)."""
        part = (version_dir / spec.file).read_bytes()  # read once: the arrays and the key
        with np.load(io.BytesIO(part), allow_pickle=False) as data:
            reference = {name: data[name] for name in data.files}
        if reference["vectors"].shape != (spec.size, spec.dims):
            raise ValueError(
                f"{spec.file}: vectors {reference['vectors'].shape}, manifest says "
                f"({spec.size}, {spec.dims})"
            )
        if spec.images != ("images" in reference):
            raise ValueError(f"{spec.file}: stored images do not match the manifest")
        if cache is None:
            return cls(spec, reference)
        key = _graph_key(part, spec)
        graph = cache.open(key, spec)
        if graph is not None:
            return cls(spec, reference, graph)
        index = cls(spec, reference)
        cache.save(key, index._index)
        return index

    @property
    def size(self) -> int:
        return len(self._ids)

    def search(self, latents: np.ndarray, k: int, images: bool = False) -> Neighbours:
        """The k nearest reference images of each latent (fewer if the index is smaller), with
        their pixels when `images` and the index stores them."""
        queries = project(latents, self._mean, self._projection)
        found = self._index.search(queries, min(k, self.size), threads=1)
        keys = np.atleast_2d(found.keys)  # usearch answers one query as Matches, not a batch
        distances = np.atleast_2d(found.distances)
        counts = np.atleast_1d(found.counts if isinstance(found, BatchMatches) else len(found))
        ids, dists, labels, pixels = [], [], [], []
        for row, count in enumerate(counts):
            hits = keys[row, :count].astype(np.int64)
            ids.append(self._ids[hits].tolist())
            dists.append(distances[row, :count].astype(float).tolist())
            labels.append([None if v == UNLABELLED else int(v) for v in self._labels[hits]])
            if self._images is not None:
                pixels.append(list(self._images[hits]))
        return Neighbours(
            ids, dists, labels, pixels if images and self._images is not None else None
        )
