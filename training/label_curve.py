"""Label efficiency: the same head on autoencoder latents vs on raw pixels, few labels to all.

Labelled examples (and, equally scarce, labelled validation examples for early stopping) are
drawn per class from the training split with a seed; accuracy is on the whole test split.
Two methods: the head on the labelled images alone (`latent`, `pixels`), and the head on every
training image with labels propagated over a kNN graph of the same features
(`latent_propagated`, `pixels_propagated`; training/propagation.py). With every label there is
nothing to propagate, and the propagated rows repeat the plain head's figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np

from app.contract.repository import IMAGE_SIDE
from training.datasets import Dataset
from training.evaluate import predict_classes
from training.heads import embed, fit_head, fit_propagated_head
from training.propagation import graph_vectors, mirrored, propagate
from training.train import TrainConfig, labelled_split, split_train_val

logger = logging.getLogger(__name__)

DEFAULT_LABELS: tuple[int | None, ...] = (10, 30, 100, None)
DEFAULT_SEEDS = (0, 1, 2)


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype("float32") / 255.0


def summary(accuracies: list[float]) -> dict[str, object]:
    mean, std = float(np.mean(accuracies)), float(np.std(accuracies))
    return {"mean": mean, "std": std, "runs": accuracies}


def label_curve(
    dataset: Dataset,
    encoder: keras.Model,
    config: TrainConfig,
    labels_per_class: Sequence[int | None] = DEFAULT_LABELS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> list[dict[str, object]]:
    splits = split_train_val(dataset, config)
    pixel_shape = (IMAGE_SIDE, IMAGE_SIDE, 1)
    features = {
        "latent": (
            embed(encoder, splits.x_train),
            embed(encoder, splits.x_val),
            embed(encoder, dataset.x_test),
            config.model.latent_shape,
        ),
        "pixels": (
            flat_pixels(splits.x_train),
            flat_pixels(splits.x_val),
            flat_pixels(dataset.x_test),
            pixel_shape,
        ),
    }
    mirror = config.graph_mirror
    graphs = {  # the same graph recipe for both feature kinds
        "latent": graph_vectors(
            features["latent"][0], embed(encoder, mirrored(splits.x_train)) if mirror else None
        ),
        "pixels": graph_vectors(
            features["pixels"][0], flat_pixels(mirrored(splits.x_train)) if mirror else None
        ),
    }
    rows: list[dict[str, object]] = []
    for per_class in labels_per_class:
        row: dict[str, object] = {"labels_per_class": per_class or "all"}
        for kind, (train_x, val_x, test_x, shape) in features.items():
            plain, propagated = [], []
            for seed in seeds:
                run = TrainConfig(
                    model=config.model,
                    head_epochs=config.head_epochs,
                    labels_per_class=per_class,
                    patience=config.patience,
                    propagated_epochs=config.propagated_epochs,
                )
                train_idx, val_idx = labelled_split(run, splits, seed)
                validation = (val_x[val_idx], splits.y_val[val_idx])
                keras.utils.set_random_seed(seed)
                head, _ = fit_head(
                    run, (train_x[train_idx], splits.y_train[train_idx]), validation, shape
                )
                plain.append(float(np.mean(predict_classes(head, test_x) == dataset.y_test)))
                if per_class is None:
                    propagated.append(plain[-1])
                    continue
                keras.utils.set_random_seed(seed)
                targets = propagate(
                    graphs[kind], train_idx, splits.y_train[train_idx], config.model.classes
                )
                head, _ = fit_propagated_head(run, train_x, targets, validation, shape)
                propagated.append(float(np.mean(predict_classes(head, test_x) == dataset.y_test)))
            row[kind], row[f"{kind}_propagated"] = summary(plain), summary(propagated)
            logger.info(
                "%s labels/class, %s: head %.4f, propagated %.4f",
                row["labels_per_class"],
                kind,
                np.mean(plain),
                np.mean(propagated),
            )
        rows.append(row)
    return rows
