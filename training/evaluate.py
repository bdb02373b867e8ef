"""Test-split metrics: accuracy, per-class accuracy, confusion matrix, reconstruction error."""

from __future__ import annotations

import keras
import numpy as np

from training.datasets import Dataset
from training.train import PREDICT_BATCH, TrainedModels, to_unit

BCE_EPSILON = 1e-7  # Keras' own clipping epsilon for binary cross-entropy


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(int), y_pred.astype(int)), 1)
    return matrix


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, object]:
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "per_class_accuracy": dict(zip(class_names, per_class.round(4).tolist(), strict=True)),
        "confusion_matrix": matrix.tolist(),
    }


def reconstruction_errors(images: np.ndarray, reconstructions: np.ndarray) -> dict[str, float]:
    """Mean per-pixel BCE and MSE on the 0-1 scale."""
    target = to_unit(images)
    clipped = np.clip(reconstructions, BCE_EPSILON, 1 - BCE_EPSILON)
    bce = -(target * np.log(clipped) + (1 - target) * np.log(1 - clipped))
    return {
        "bce": float(bce.mean()),
        "mse": float(np.mean((reconstructions - target) ** 2)),
    }


def evaluate(trained: TrainedModels, dataset: Dataset, latents: np.ndarray) -> dict[str, object]:
    """Test-split metrics; `latents` are the encoder's outputs for dataset.x_test."""
    reconstructions = np.asarray(
        trained.decoder.predict(latents, batch_size=PREDICT_BATCH, verbose=0)
    )
    probabilities = np.asarray(trained.head.predict(latents, batch_size=PREDICT_BATCH, verbose=0))
    metrics: dict[str, object] = {
        "test_images": len(dataset.x_test),
        "frozen": classification_metrics(probabilities, dataset.y_test, dataset.class_names),
        "reconstruction": reconstruction_errors(dataset.x_test, reconstructions),
    }
    if trained.fine_tuned is not None:
        tuned = np.asarray(
            trained.fine_tuned.predict(dataset.x_test, batch_size=PREDICT_BATCH, verbose=0)
        )
        metrics["fine_tuned"] = classification_metrics(tuned, dataset.y_test, dataset.class_names)
    return metrics


def predict_classes(model: keras.Model, features: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(model.predict(features, batch_size=PREDICT_BATCH, verbose=0))
    return np.asarray(probabilities.argmax(axis=1))
