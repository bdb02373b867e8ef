"""Choosing the propagation's graph from the labelled images alone, never the test split.

The candidates are kNN graphs over the encoder's latents, over the pixels and over both
(each a whitened PCA, cosine, 10 neighbours; training/propagation.py). Each is
scored by stratified k-fold cross-validation over the labelled images: a fold of labels is
held out, the rest propagated, and the held-out images that get their own label back are
counted. With a hundred labels two candidates' scores differ by a few images' luck, so the
one-standard-error rule decides: the first candidate (latents first) whose score is within
one standard error of the best. A class with
fewer than two labelled images leaves nothing to hold out: the default is used, and the
run's report says so. The graph is only where the labels come from: the served head is always
trained on the latents, so the service answers from the encoder whichever graph won.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from training.propagation import NEIGHBOURS, graph_vectors, knn_graph, propagate_on

logger = logging.getLogger(__name__)

FOLDS = 5


@dataclass(frozen=True)
class GraphChoice:
    features: str = "latent"
    neighbours: int = NEIGHBOURS

    @property
    def name(self) -> str:
        return self.features


@dataclass(frozen=True)
class Selection:
    choice: GraphChoice
    scores: dict[str, float] = field(default_factory=dict)
    """Cross-validated accuracy on the held-out labelled images, by candidate."""
    folds: int = 0
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "graph": self.choice.name,
            "features": self.choice.features,
            "neighbours": self.choice.neighbours,
            "cross_validation": self.scores,
            "folds": self.folds,
            "reason": self.reason,
        }


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def candidate_vectors(
    latents: np.ndarray,
    flipped_latents: np.ndarray | None,
    images: np.ndarray,
) -> dict[str, np.ndarray]:
    """Unit vectors per feature kind. Mirror images are folded into the latents' where the
    classes allow (`flipped_latents`), never into the pixels': pixels propagate better without
    them (75.1 % against 74.5 % on fashion-mnist-10/2's split, docs/experiments.md)."""
    latent = graph_vectors(latents, flipped_latents)
    pixels = graph_vectors(flat_pixels(images))
    both = np.concatenate([latent, pixels], axis=1) / np.sqrt(2)
    return {"latent": latent, "pixels": pixels, "latent+pixels": both}


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Positions into `labels`, dealt class by class into `folds` folds."""
    rng = np.random.default_rng(seed)
    dealt: list[list[int]] = [[] for _ in range(folds)]
    turn = 0
    for label in np.unique(labels):
        for position in rng.permutation(np.flatnonzero(labels == label)):
            dealt[turn % folds].append(int(position))
            turn += 1
    return [np.asarray(sorted(fold), dtype=np.int64) for fold in dealt]


def cross_validated(
    graph_of: dict[str, sp.csr_matrix],
    labelled: np.ndarray,
    labels: np.ndarray,
    classes: int,
    seed: int,
    balanced: bool = True,
) -> tuple[dict[str, float], int]:
    """Accuracy on held-out labels per candidate graph, and the number of folds."""
    folds = int(min(FOLDS, np.bincount(labels)[np.unique(labels)].min()))
    split = stratified_folds(labels, folds, seed)
    scores = {}
    for name, graph in graph_of.items():
        right = 0
        for held in split:
            kept = np.setdiff1d(np.arange(len(labelled)), held)
            found = propagate_on(graph, labelled[kept], labels[kept], classes, balanced)
            right += int(np.sum(found.labels[labelled[held]] == labels[held]))
        scores[name] = right / len(labelled)
    return scores, folds


def select_graph(
    vectors: dict[str, np.ndarray],
    labelled: np.ndarray,
    labels: np.ndarray,
    classes: int,
    seed: int = 0,
    balanced: bool = True,
    what: str = "graph",
) -> Selection:
    """The candidate graph that cross-validates best over the labelled images; candidates in
    `vectors`' order, the first preferred (also used to choose between encoders: `what`)."""
    candidates = [GraphChoice(features) for features in vectors]
    present = np.bincount(labels)[np.unique(labels)]
    if present.min() < 2:
        return Selection(
            candidates[0],
            reason="a class has fewer than 2 labelled images: nothing to hold out, so the "
            f"default {what} ({candidates[0].name}) is used",
        )
    graphs = {c.name: knn_graph(vectors[c.features], c.neighbours) for c in candidates}
    scores, folds = cross_validated(graphs, labelled, labels, classes, seed, balanced)
    top = max(scores.values())
    # The best score's standard error; at least one held-out image's worth (a perfect score
    # has no spread).
    error = max(float(np.sqrt(top * (1 - top) / len(labelled))), 1 / len(labelled))
    best = next(c for c in candidates if scores[c.name] >= top - error)
    logger.info(
        "%s chosen by %d-fold cross-validation over %d labelled images: %s (%s)",
        what,
        folds,
        len(labelled),
        best.name,
        ", ".join(f"{name} {score:.3f}" for name, score in scores.items()),
    )
    reason = (
        f"the first of {len(candidates)} within one standard error ({error:.1%}) of the "
        f"best in {folds}-fold cross-validation over the {len(labelled)} labelled images "
        f"({scores[best.name]:.1%} of held-out labels recovered)"
    )
    return Selection(best, scores, folds, reason)
