"""Few labels, many images: Poisson learning over a k-nearest-neighbour graph of the latents.

The labelled images' classes are propagated to every training image along a kNN graph of the
encoder's latents (Calder et al., "Poisson Learning", ICML 2020), and the served head is then
trained on all training latents with the propagated labels, weighted by their confidence. The
head generalises the propagation to images the graph never saw (the test split), so the
figures are inductive.

Choices, measured by `python -m training propagation-study` on Fashion-MNIST at 10 labels per
class with the shipped version 4 encoder, 3 seeds (docs/training.md has the table): the graph is
built in the similarity index's space (whitened PCA, cosine), 32 dimensions (78.0 % of the
training images labelled right; 64 dimensions 78.2 %, within the seeds' spread, 16 dimensions
73.2 %); k = 10 (5 or 20: 77.7 %); class sizes balanced (to equal sizes since 2026-12) by
per-class offsets (75.7 % without); an image and its mirror image as one point (77.1 %
without). The same recipe on raw pixels labels 73.7 % right.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from usearch.index import Index

from app.contract.similarity import project
from training.index import fit_projection

logger = logging.getLogger(__name__)

GRAPH_DIMS = 32
NEIGHBOURS = 10
POISSON_STEPS = 300  # the iteration has mixed by then on graphs of 10^4-10^5 images
# Poisson-MBO's rounds and heat steps per round: Calder et al.'s defaults (their GraphLearning
# package: T 20, Ns 40, mu 1).
MBO_ROUNDS = 20
MBO_STEPS = 40
BALANCE_STEPS = 200
BALANCE_RATE = 0.1  # offset step, as a fraction of the scores' spread, per unit of size error
CONFIDENT_QUANTILE = 0.9  # margins at or above this quantile get full weight


@dataclass(frozen=True)
class Propagated:
    """A label for every image of the graph, and how much the head should trust it (0-1)."""

    labels: np.ndarray
    weights: np.ndarray
    margins: np.ndarray
    """The gap between the best and second-best class scores: small where the graph is
    unsure (what to label next, training/suggest.py)."""


def mirrored(images: np.ndarray) -> np.ndarray:
    """Images (n, h, w) flipped left to right."""
    return np.ascontiguousarray(images[:, :, ::-1])


def graph_vectors(
    latents: np.ndarray, mirrored: np.ndarray | None = None, dims: int = GRAPH_DIMS
) -> np.ndarray:
    """Unit vectors the graph is built on: whitened PCA of the latents (and of the mirrored
    images' latents, summed, so that an item and its mirror image are near each other)."""
    mean, projection = fit_projection(latents, dims)
    vectors = project(latents, mean, projection)
    if mirrored is not None:
        summed = vectors + project(mirrored, mean, projection)
        vectors = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    return vectors


def neighbours(reference: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k nearest reference rows by cosine (usearch HNSW): rows and distances.

    The index is built in one thread: a threaded insert links each node to whatever other threads
    had inserted by then, so two builds of the pixel graph of Fashion-MNIST's 60,000 training
    images disagreed on 136 images' neighbours and a rerun of `train` with the same seed could
    change its verdict. One thread took 7.2-7.5 s against 4.6 (bench/graph_build.py)."""
    reference = np.ascontiguousarray(reference, np.float32)
    index = Index(ndim=reference.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(len(reference)), reference, threads=1)
    found = index.search(np.ascontiguousarray(queries, np.float32), min(k, len(reference)))
    return np.atleast_2d(found.keys).astype(np.int64), np.atleast_2d(found.distances)


def knn_graph(vectors: np.ndarray, k: int = NEIGHBOURS) -> sp.csr_matrix:
    """Symmetric weights exp(-4 (d / d_k)^2) to each image's k nearest neighbours by cosine,
    d_k being the distance to its k-th (self-tuning, as in Calder et al.)."""
    keys, distances = neighbours(vectors, vectors, k + 1)
    keys, distances = keys[:, 1:], distances[:, 1:]  # not itself
    scale = np.maximum(distances[:, -1:], 1e-9)
    weights = np.exp(-4 * (distances / scale) ** 2)
    rows = np.repeat(np.arange(len(vectors)), k)
    graph = sp.csr_matrix((weights.ravel(), (rows, keys.ravel())), shape=(len(vectors),) * 2)
    return (graph + graph.T).tocsr()


def _sources(n: int, labelled: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """One source per labelled image: its one-hot class minus the labelled images' mean."""
    sources = np.zeros((n, classes))
    sources[labelled, labels] = 1.0
    sources[labelled] -= sources[labelled].mean(axis=0)
    return sources


def poisson_learning(
    graph: sp.csr_matrix, labelled: np.ndarray, labels: np.ndarray, classes: int
) -> np.ndarray:
    """Scores (n, classes): the graph Poisson equation L u = sources, solved by Jacobi steps."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    sources = _sources(graph.shape[0], labelled, labels, classes)
    scores = np.zeros_like(sources)
    for _ in range(POISSON_STEPS):
        scores += (sources - (degree[:, None] * scores - graph @ scores)) / degree[:, None]
    return scores


def poisson_mbo(
    graph: sp.csr_matrix,
    labelled: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    proportions: np.ndarray | None,
) -> np.ndarray:
    """Poisson learning's `scores` refined by Poisson-MBO (Calder et al. 2020, section 4):
    rounds of a short heat flow from the current one-hot labels, the labelled sources still
    flowing in, each followed by a threshold to class sizes (`balance`, when `proportions`).
    Returns the last round's flowed scores: they decide the labels and the margins.

    Poisson learning's scores decay away from the labelled images, so an image far from every
    label is decided by small differences; the flow from thresholded labels moves class
    boundaries to where the graph is thin (a graph cut). On Fashion-MNIST at 10 labels per
    class it labels 79.1 % of the training images right against 78.0 % (`python -m training
    propagation-study`), but the head trained on its labels scored the same on the test split
    (78.22 % against 78.23 %, seeds 0-2, `bench/propagation_heads.py`): not the default
    (`--mbo`)."""
    n, classes = scores.shape
    degree = np.asarray(graph.sum(axis=1)).ravel()
    step = 1.0 / degree.max()  # the explicit heat step is stable below 1 / max degree
    heat = (sp.diags(1.0 - step * degree) + step * graph).astype(np.float32).tocsr()
    inflow = (step * _sources(n, labelled, labels, classes)).astype(np.float32)
    flowed = scores
    for _ in range(MBO_ROUNDS):
        state = np.eye(classes, dtype=np.float32)[flowed.argmax(axis=1)]
        for _ in range(MBO_STEPS):
            state = heat @ state + inflow
        flowed = balance(state, proportions) if proportions is not None else state
    return flowed


def class_proportions(classes: int) -> np.ndarray:
    """The class sizes propagation balances to: equal. Balancing to the labelled images' own
    proportions (as before) is the same for labels drawn per class, but labels added where the
    graph was unsure (training/suggest.py), or more of one class because it was easier to
    find, are not the classes' sizes: balanced to them, 20 more labels cost digits 11 points
    instead of gaining (docs/experiments.md). A folder whose classes differ much in size wants
    `balanced=False` (`--no-balance`)."""
    return np.full(classes, 1.0 / classes)


def balance(scores: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """Add a per-class offset until the predicted class sizes match `proportions`: Poisson
    learning favours classes whose labelled images sit in dense regions. (Additive offsets
    beat multiplying the scores by a per-class factor: docs/experiments.md.)"""
    offsets = np.zeros(scores.shape[1])
    target = np.maximum(proportions * len(scores), 1.0)
    step = BALANCE_RATE * float(scores.std())
    for _ in range(BALANCE_STEPS):
        counts = np.bincount((scores + offsets).argmax(axis=1), minlength=len(offsets))
        offsets += step * (target - counts) / target
    return np.asarray(scores + offsets)


def propagate(
    vectors: np.ndarray,
    labelled: np.ndarray,
    labels: np.ndarray,
    classes: int,
    k: int = NEIGHBOURS,
    balanced: bool = True,
    mbo: bool = False,
) -> Propagated:
    """Labels for every row of `vectors`, from `labels` of the rows `labelled`."""
    return propagate_on(knn_graph(vectors, k), labelled, labels, classes, balanced, mbo)


def propagate_on(
    graph: sp.csr_matrix,
    labelled: np.ndarray,
    labels: np.ndarray,
    classes: int,
    balanced: bool = True,
    mbo: bool = False,
) -> Propagated:
    """`propagate` over a graph already built (cross-validation reuses one graph per fold);
    Poisson learning, refined by Poisson-MBO when `mbo`."""
    proportions = class_proportions(classes) if balanced else None
    scores = poisson_learning(graph, labelled, labels, classes)
    if proportions is not None:
        scores = balance(scores, proportions)
    if mbo:
        scores = poisson_mbo(graph, labelled, labels, scores, proportions)
    ranked = np.sort(scores, axis=1)
    margin = ranked[:, -1] - ranked[:, -2]
    weights = np.clip(margin / max(np.quantile(margin, CONFIDENT_QUANTILE), 1e-12), 0.0, 1.0)
    predicted = scores.argmax(axis=1)
    predicted[labelled], weights[labelled] = labels, 1.0
    logger.debug(
        "propagated %d labels to %d images (mean weight %.2f)",
        len(labelled),
        graph.shape[0],
        weights.mean(),
    )
    return Propagated(predicted, weights.astype(np.float32), margin.astype(np.float32))
