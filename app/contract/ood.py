"""Out-of-distribution scores: how unlike its training images an input is, from its latent.

The score is the Mahalanobis distance of the latent, projected by a whitened PCA to 64
dimensions, to the nearest class mean under the classes' shared covariance, all fitted on the
training split. Its `ood_score` is the fraction of held-out in-distribution calibration images
(the validation split, never trained on, never the test split) that score lower: about
uniform on [0, 1] for in-distribution inputs, near 1 for the rest. Chosen by measurement among
reconstruction error, softmax confidence, complexity-normalised errors, latent norms and
k-nearest-neighbour distances (docs/training.md): it was the one score with an AUROC of at
least 0.95 for both models against both the other dataset and uniform noise, where the
reconstruction error fails for the Fashion-MNIST model on digits (sparse digits reconstruct
well).

This module is also the calibration part's one definition: training writes it with
`save_calibration`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.contract.repository import OodSpec


def mahalanobis(
    latents: np.ndarray,
    mean: np.ndarray,
    projection: np.ndarray,
    class_means: np.ndarray,
    precision: np.ndarray,
) -> np.ndarray:
    """Squared distance of each latent to its nearest class mean, in the projected space."""
    projected = (np.asarray(latents, np.float32) - mean) @ projection
    diff = projected[:, None, :] - class_means[None, :, :]
    # (diff @ precision) · diff through BLAS, not one einsum("nkd,de,nke->nk"): numpy runs
    # that as an unoptimised loop, which cost as much as the encoder itself (the whole score
    # for 32 latents: 1,539 us then, 186 us now; bench/micro.py).
    distances = ((diff @ precision) * diff).sum(axis=-1)
    return np.asarray(distances.min(axis=1))


def rank(calibration: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """ood_score: the fraction of the sorted calibration scores below each raw score."""
    ranks = np.searchsorted(calibration, raw, side="left")
    return np.asarray(ranks / len(calibration), np.float32)


def save_calibration(path: Path, parameters: dict[str, np.ndarray], scores: np.ndarray) -> None:
    """The part: projection, class means, shared precision and sorted calibration scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {k: np.asarray(v, np.float32) for k, v in parameters.items()}
    arrays["calibration"] = np.sort(np.asarray(scores, np.float32))
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


class OodScorer:
    def __init__(self, spec: OodSpec, arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self._mean = arrays["mean"]
        self._projection = arrays["projection"]
        self._class_means = arrays["class_means"]
        self._precision = arrays["precision"]
        self._calibration = arrays["calibration"]

    @classmethod
    def load(cls, version_dir: Path, spec: OodSpec) -> OodScorer:
        with np.load(version_dir / spec.file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if len(arrays["calibration"]) != spec.calibration_images:
            raise ValueError(f"{spec.file}: calibration scores do not match the manifest")
        return cls(spec, arrays)

    def raw(self, latents: np.ndarray) -> np.ndarray:
        return mahalanobis(
            latents, self._mean, self._projection, self._class_means, self._precision
        )

    def score(self, latents: np.ndarray) -> np.ndarray:
        """float32 (n,): the fraction of calibration images that score lower, in [0, 1]."""
        return rank(self._calibration, self.raw(latents))
