"""Label efficiency: the same head on autoencoder latents vs on raw pixels, few labels to all.

Labelled examples (and, equally scarce, labelled validation examples for early stopping) are
drawn per class from the training split with a seed; accuracy is on the whole test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np

from app.repository import IMAGE_SIDE
from training.datasets import Dataset
from training.evaluate import predict_classes
from training.train import TrainConfig, embed, fit_head, labelled_split, split_train_val

logger = logging.getLogger(__name__)

DEFAULT_LABELS: tuple[int | None, ...] = (10, 30, 100, None)
DEFAULT_SEEDS = (0, 1, 2)


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype("float32") / 255.0


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
    rows: list[dict[str, object]] = []
    for per_class in labels_per_class:
        row: dict[str, object] = {"labels_per_class": per_class or "all"}
        for kind, (train_x, val_x, test_x, shape) in features.items():
            accuracies = []
            for seed in seeds:
                keras.utils.set_random_seed(seed)
                run = TrainConfig(
                    model=config.model,
                    head_epochs=config.head_epochs,
                    labels_per_class=per_class,
                    patience=config.patience,
                )
                train_idx, val_idx = labelled_split(run, splits, seed)
                head, _ = fit_head(
                    run,
                    (train_x[train_idx], splits.y_train[train_idx]),
                    (val_x[val_idx], splits.y_val[val_idx]),
                    shape,
                )
                accuracies.append(float(np.mean(predict_classes(head, test_x) == dataset.y_test)))
            row[kind] = {
                "mean": float(np.mean(accuracies)),
                "std": float(np.std(accuracies)),
                "runs": accuracies,
            }
            logger.info(
                "%s labels/class, %s: %.4f ± %.4f",
                row["labels_per_class"],
                kind,
                np.mean(accuracies),
                np.std(accuracies),
            )
        rows.append(row)
    return rows
