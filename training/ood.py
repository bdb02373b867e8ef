"""Out-of-distribution calibration of a version, and the measurements that chose its score.

Fitted on the training split (the validation split held out), calibrated on the validation
split, evaluated on images never used for either: the model's test split as in-distribution,
the other dataset's test split and uniform noise as out-of-distribution, every image sent as a
PNG through the service's own decoding and framing. Every candidate score is evaluated (AUROC
and FPR at 95% TPR) and reported; the service uses the Mahalanobis distance of app.contract.ood.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from app.contract.images import ImageOptions, decode_image
from app.contract.ood import mahalanobis, rank, save_calibration
from app.contract.repository import Manifest, OodSpec
from training.index import fit_projection

logger = logging.getLogger(__name__)

OOD_DIMS = 64
CALIBRATION_IMAGES = 6000
EVALUATION_IMAGES = 2000  # of each set
NOISE_SEED = 0
TPR = 0.95
# What the model makes for uint8 (n, 28, 28): latents, probabilities, reconstructions (0-1).
RunModel = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Calibration:
    spec: OodSpec
    parameters: dict[str, np.ndarray]
    scores: np.ndarray
    evaluation: dict[str, dict[str, dict[str, float]]]
    """Every candidate score's AUROC and FPR at 95% TPR, by out-of-distribution set."""

    def write(self, version_dir: Path) -> None:
        save_calibration(version_dir / self.spec.file, self.parameters, self.scores)


def through_the_service(images: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Each image as a PNG upload, decoded and framed as the service does it."""
    spec = manifest.input
    options = ImageOptions(
        max_pixels=10**7, fit_box=spec.fit_box, centre_of_mass=spec.centre_of_mass
    )
    out = []
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(decode_image(buffer.getvalue(), options, index))
    return np.stack(out)


def fit(latents: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """Whitened PCA, class means and the shared precision of the projected latents."""
    mean, projection = fit_projection(latents, OOD_DIMS)
    projected = (latents - mean) @ projection
    class_means = np.stack([projected[labels == c].mean(axis=0) for c in range(classes)])
    residual = projected - class_means[labels]
    covariance = np.cov(residual.T) + 1e-6 * np.eye(projected.shape[1])
    return {
        "mean": mean,
        "projection": projection,
        "class_means": class_means,
        "precision": np.linalg.inv(covariance),
    }


def candidates(
    images: np.ndarray, run: RunModel, parameters: dict[str, np.ndarray], train: np.ndarray
) -> dict[str, np.ndarray]:
    """Every score tried (higher: less like the training images)."""
    latents, probabilities, rebuilt = run(images)
    target = images.astype(np.float32) / 255.0
    mse = np.mean((rebuilt - target) ** 2, axis=(1, 2))
    clipped = np.clip(rebuilt, 1e-7, 1 - 1e-7)
    bce = -np.mean(target * np.log(clipped) + (1 - target) * np.log(1 - clipped), axis=(1, 2))
    complexity = np.array([len(_png(image)) for image in images], np.float32)
    projected = (latents - parameters["mean"]) @ parameters["projection"]
    unit = projected / np.linalg.norm(projected, axis=1, keepdims=True)
    references = (train - parameters["mean"]) @ parameters["projection"]
    references /= np.linalg.norm(references, axis=1, keepdims=True)
    return {
        "reconstruction MSE": mse,
        "reconstruction BCE": bce,
        "1 - max softmax probability": 1 - probabilities.max(axis=1),
        "reconstruction MSE / PNG size (complexity)": mse / complexity,
        "norm of the whitened latent (64 dims)": np.sum(projected**2, axis=1),
        "cosine distance to the 10th nearest training latent": 1
        - np.sort(unit @ references.T)[:, -10],
        "Mahalanobis, class means, shared covariance (chosen)": mahalanobis(latents, **parameters),
    }


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def separation(inside: np.ndarray, outside: np.ndarray) -> dict[str, float]:
    """AUROC (out-of-distribution as positive) and the false alarm rate at 95% detection."""
    truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    scores = np.r_[inside, outside]
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "auroc": float(roc_auc_score(truth, scores)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, TPR, side="left")]),
    }


def flagged_share(calibration: np.ndarray, threshold: float, scores: np.ndarray) -> float:
    """The share of `scores` the service calls out of distribution (ood_score > threshold)."""
    return float(np.mean(rank(calibration, scores) > threshold))


def calibrate(
    manifest: Manifest,
    run: RunModel,
    train: tuple[np.ndarray, np.ndarray],
    validation: np.ndarray,
    test: np.ndarray,
    others: dict[str, np.ndarray],
) -> Calibration:
    """Fit on `train`, calibrate on `validation`, evaluate `test` against each of `others`
    (images of other kinds) and uniform noise; every image through the service's decoding."""
    rng = np.random.default_rng(NOISE_SEED)
    noise = rng.integers(0, 256, (EVALUATION_IMAGES, 28, 28), dtype=np.uint8)
    sets = {**others, "uniform noise": noise}
    train_latents = run(train[0])[0]
    parameters = fit(train_latents, train[1], len(manifest.class_names))
    held_out = through_the_service(validation[:CALIBRATION_IMAGES], manifest)
    calibration = mahalanobis(run(held_out)[0], **parameters)
    inside = candidates(
        through_the_service(test[:EVALUATION_IMAGES], manifest), run, parameters, train_latents
    )
    evaluation: dict[str, dict[str, dict[str, float]]] = {}
    threshold = OodSpec.model_fields["threshold"].default
    flagged = partial(flagged_share, np.sort(calibration), threshold)
    for name, images in sets.items():
        outside = candidates(
            through_the_service(images[:EVALUATION_IMAGES], manifest),
            run,
            parameters,
            train_latents,
        )
        evaluation[name] = {score: separation(inside[score], outside[score]) for score in inside}
        evaluation[name][CHOSEN] |= {
            "test_flagged_at_threshold": flagged(inside[CHOSEN]),
            "detected_at_threshold": flagged(outside[CHOSEN]),
        }
        logger.info("ood vs %s: %s", name, evaluation[name][CHOSEN])
    spec = OodSpec(
        dims=parameters["projection"].shape[1],
        calibration_images=len(calibration),
        calibration_source=f"{len(calibration)} validation images of {manifest.dataset.name}",
        evaluation={name: scores[CHOSEN] for name, scores in evaluation.items()},
    )
    return Calibration(spec, parameters, calibration, evaluation)


CHOSEN = "Mahalanobis, class means, shared covariance (chosen)"
