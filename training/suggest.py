"""What to label next: the unlabelled images whose labels would help the propagation most.

Each image is scored by how unsure the propagation is of it (the gap between its best and
second-best class scores, small is unsure) times how typical it is (how close its nearest
neighbours in the graph are, to the fourth power: an outlier's label teaches the graph little),
and the best are taken one per neighbourhood: after each pick its nearest neighbours are not
picked, so one unclear region does not take every suggestion. Measured against other rules
and random picks in docs/experiments.md. Written as a CSV of ids (paths, for an image
folder), the propagation's current guess and its confidence.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.propagation import CONFIDENT_QUANTILE, NEIGHBOURS, Propagated, neighbours

DEFAULT_COUNT = 20
TYPICAL_POWER = 4


@dataclass(frozen=True)
class Suggestion:
    position: int
    """Index into the images the propagation ran over."""
    guess: int
    confidence: float


def nearest(vectors: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Each unit vector's k nearest others (usearch, cosine): their rows and similarities."""
    keys, distances = neighbours(vectors, vectors, k + 1)
    return keys[:, 1:], 1 - distances[:, 1:]  # the first is the image itself


def suggest(
    vectors: np.ndarray,
    propagated: Propagated,
    labelled: np.ndarray,
    count: int = DEFAULT_COUNT,
) -> list[Suggestion]:
    """Up to `count` unlabelled rows of `vectors` (the graph's unit vectors), best first."""
    if count <= 0 or len(labelled) >= len(vectors):
        return []
    neighbours, similarity = nearest(vectors)
    typical = np.clip(similarity.mean(axis=1), 0, None) ** TYPICAL_POWER
    scale = max(float(np.quantile(propagated.margins, CONFIDENT_QUANTILE)), 1e-12)
    unsure = 1 - np.clip(propagated.margins / scale, 0, 1)
    score = unsure * typical  # in [0, 1]
    score[labelled] = -np.inf
    picked: list[int] = []
    while len(picked) < count and np.isfinite(score).any():
        best = int(np.argmax(score))
        picked.append(best)
        # Its neighbours drop behind every image not yet near a pick (a small folder may run
        # out of those: then they come next, best first).
        near = neighbours[best][np.isfinite(score[neighbours[best]])]
        score[near] -= 2
        score[best] = -np.inf
    return [Suggestion(i, int(propagated.labels[i]), float(propagated.weights[i])) for i in picked]


def write_csv(
    path: Path, suggestions: list[Suggestion], ids: list[str], class_names: tuple[str, ...]
) -> Path:
    """rank, id, current guess, its confidence (0-1): one row per suggestion (`ids` are the
    suggestions' own, in their order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "image", "current_guess", "confidence"])
        for rank, (item, image) in enumerate(zip(suggestions, ids, strict=True), 1):
            writer.writerow([rank, image, class_names[item.guess], f"{item.confidence:.3f}"])
    return path
