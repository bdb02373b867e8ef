"""Classifier heads on features: on the labelled images alone, or on every training image
with propagated labels; and the augmented views whose latents the head also learns from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

from training.augment import Augmentation, augment
from training.models import build_head

if TYPE_CHECKING:
    from training.propagation import Propagated
    from training.train import TrainConfig

PREDICT_BATCH = 1024


def early_stopping(patience: int) -> keras.callbacks.Callback:
    return keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)


def embed(encoder: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(encoder.predict(images, batch_size=PREDICT_BATCH, verbose=0))


def view_latents(
    encoder: keras.Model, images: np.ndarray, views: int, augmentation: Augmentation, flip: bool
) -> np.ndarray:
    """Latents of `views` random views of each image (training/augment.py), stacked view by
    view: what a head trained on them has seen of photos and scans."""
    if not views:
        return np.zeros((0, *encoder.output_shape[1:]), np.float32)
    stacked = []
    for _ in range(views):
        pixels = np.concatenate(
            [
                np.asarray(augment(images[start : start + PREDICT_BATCH], augmentation, flip))
                for start in range(0, len(images), PREDICT_BATCH)
            ]
        )
        stacked.append(embed(encoder, pixels))
    return np.concatenate(stacked)


def _compiled(config: TrainConfig, feature_shape: tuple[int, int, int] | None) -> keras.Model:
    head = build_head(config.model, feature_shape)
    head.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return head


def fit_head(
    config: TrainConfig,
    features: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    feature_shape: tuple[int, int, int] | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train a fresh head on flat features; the same recipe serves latents and raw pixels.

    `feature_shape` is the features' spatial shape (default: the latent's)."""
    x, y = features
    head = _compiled(config, feature_shape)
    # Small labelled sets get small batches so the head still sees many updates.
    batch_size = int(np.clip(len(x) // 10, 8, config.batch_size))
    history = head.fit(
        x,
        y,
        validation_data=validation,
        batch_size=batch_size,
        epochs=config.head_epochs,
        callbacks=[early_stopping(config.patience * 2)],
        verbose=verbose,
    )
    return head, history.history


def fit_propagated_head(
    config: TrainConfig,
    features: np.ndarray,
    targets: Propagated,
    validation: tuple[np.ndarray, np.ndarray] | None,
    feature_shape: tuple[int, int, int] | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """A fresh head on every training image's features, with the propagated labels; rows
    beyond the images' (their augmented views, view by view) take the same labels."""
    repeats = len(features) // len(targets.labels)
    head = _compiled(config, feature_shape)
    history = head.fit(
        features,
        np.tile(targets.labels, repeats),
        sample_weight=np.tile(targets.weights, repeats),
        validation_data=validation,
        batch_size=2 * config.batch_size,
        epochs=config.propagated_epochs,
        shuffle=True,
        verbose=verbose,
    )
    return head, history.history
