"""What the propagation's graph is built on, measured: `python -m training propagation-study`.

Each variant propagates the same few labels (per seed) over the training split and is scored
by the share of training images it labels right (transductive: no head, no test images), which
is what the head then learns from. The default recipe is training/propagation.py's constants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from training.datasets import Dataset
from training.label_curve import flat_pixels
from training.propagation import GRAPH_DIMS, NEIGHBOURS, graph_vectors, mirrored, propagate
from training.train import TrainConfig, embed, per_class_subset, split_train_val

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    features: str = "latent"  # or "pixels"
    dims: int = GRAPH_DIMS
    mirror: bool = True
    k: int = NEIGHBOURS
    balanced: bool = True
    mbo: bool = False


VARIANTS = (
    Variant("default: latent, whitened PCA 32, mirror, k 10, balanced"),
    Variant("refined by Poisson-MBO", mbo=True),
    Variant("16 dimensions", dims=16),
    Variant("64 dimensions", dims=64),
    Variant("no mirror", mirror=False),
    Variant("k 5", k=5),
    Variant("k 20", k=20),
    Variant("not balanced", balanced=False),
    Variant("raw pixels, same recipe", features="pixels"),
    Variant("raw pixels, no mirror", features="pixels", mirror=False),
)


def propagation_study(
    dataset: Dataset, encoder: object, config: TrainConfig, per_class: int, seeds: tuple[int, ...]
) -> list[dict[str, object]]:
    splits = split_train_val(dataset, config)
    x = splits.x_train
    features = {
        "latent": (embed(encoder, x), embed(encoder, mirrored(x))),
        "pixels": (flat_pixels(x), flat_pixels(mirrored(x))),
    }
    rows: list[dict[str, object]] = []
    for variant in VARIANTS:
        plain, flipped = features[variant.features]
        vectors = graph_vectors(plain, flipped if variant.mirror else None, variant.dims)
        accuracies = []
        for seed in seeds:
            labelled = per_class_subset(splits.y_train, per_class, seed)
            found = propagate(
                vectors,
                labelled,
                splits.y_train[labelled],
                config.model.classes,
                variant.k,
                variant.balanced,
                variant.mbo,
            )
            accuracies.append(float(np.mean(found.labels == splits.y_train)))
        logger.info("%s: %.4f", variant.name, np.mean(accuracies))
        mean = float(np.mean(accuracies))
        rows.append({"variant": variant.name, "mean": mean, "runs": accuracies})
    return rows
