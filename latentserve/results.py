"""What the client returns: numpy arrays and typed objects, never raw JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, order=True)
class ModelRef:
    name: str
    version: int


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """One row per input, in input order: float32 (n, dim); int8 (n, dim) for
    encoding="int8"; uint8 (n, dim / 8), the packed sign bits, for encoding="binary"."""
    model: ModelRef
    encoding: str = "float32"
    scale: float | None = None
    """int8: a value is int8 x scale (the version's step)."""

    def floats(self) -> np.ndarray:
        """float32 (n, dim): the values, int8 ones scaled back (binary codes have none)."""
        if self.encoding == "binary":
            raise ValueError("binary embeddings are sign bits; compare them by Hamming distance")
        if self.scale is not None:
            return self.vectors.astype(np.float32) * np.float32(self.scale)
        return np.asarray(self.vectors, np.float32)


@dataclass(frozen=True)
class ClassScore:
    label: int
    class_name: str
    confidence: float


@dataclass(frozen=True)
class Prediction:
    label: int
    class_name: str
    confidence: float
    probabilities: np.ndarray
    top_k: list[ClassScore] | None
    ood_score: float | None = None
    """How unlike the model's training images the input is, in [0, 1] (None: the version has
    no out-of-distribution calibration)."""
    in_distribution: bool | None = None
    """False when ood_score is above the threshold (the version's, or ood_threshold=)."""


@dataclass(frozen=True)
class Classifications:
    predictions: list[Prediction]
    model: ModelRef

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.label for p in self.predictions])


@dataclass(frozen=True)
class Reconstruction:
    """One image's reconstruction, as the service answers it."""

    image: np.ndarray
    error: float
    ood_score: float | None
    in_distribution: bool | None


@dataclass(frozen=True)
class Reconstructions:
    images: np.ndarray
    """uint8 (n, 28, 28): the decoder's reconstructions."""
    errors: np.ndarray
    """float (n,): mean squared error against each input on the 0-1 scale."""
    model: ModelRef
    ood_scores: np.ndarray | None = None
    """float (n,) in [0, 1], as Prediction.ood_score; None for a version without calibration."""
    in_distribution: np.ndarray | None = None
    """bool (n,), as Prediction.in_distribution; None for a version without calibration."""

    @classmethod
    def of(cls, rows: list[Reconstruction], model: ModelRef) -> Reconstructions:
        calibrated = all(r.ood_score is not None for r in rows)
        return cls(
            images=np.stack([r.image for r in rows]),
            errors=np.asarray([r.error for r in rows]),
            model=model,
            ood_scores=np.asarray([r.ood_score for r in rows]) if calibrated else None,
            in_distribution=np.asarray([r.in_distribution for r in rows]) if calibrated else None,
        )


@dataclass(frozen=True)
class Neighbour:
    id: str
    distance: float
    label: int | None
    class_name: str | None
    image: np.ndarray | None = field(default=None, compare=False)
    """uint8 (28, 28): the reference image, with neighbour_images=True when the index stores
    them."""


@dataclass(frozen=True)
class Neighbours:
    neighbours: list[list[Neighbour]]
    """Per input, its k nearest reference images, nearest first."""
    model: ModelRef


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_body_bytes: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: int
    """The highest served version."""
    versions: list[int]
    latent_dim: int
    class_names: list[str]
    has_index: bool
    limits: Limits
