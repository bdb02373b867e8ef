"""What the client returns: numpy arrays and typed objects, never raw JSON."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class ModelRef:
    name: str
    version: int


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """float32 (n, dim), one row per input, in input order."""
    model: ModelRef


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


@dataclass(frozen=True)
class Classifications:
    predictions: list[Prediction]
    model: ModelRef

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.label for p in self.predictions])


@dataclass(frozen=True)
class Reconstructions:
    images: np.ndarray
    """uint8 (n, 28, 28): the decoder's reconstructions."""
    errors: np.ndarray
    """float (n,): mean squared error against each input on the 0-1 scale."""
    model: ModelRef


@dataclass(frozen=True)
class Neighbour:
    id: str
    distance: float
    label: int | None
    class_name: str | None


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
