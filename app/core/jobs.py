"""The typed seam between request parsing, batching and the model (no HTTP, no TensorFlow).

A request becomes a `Job` (its images, decoded later in a worker thread); a `Runner` runs it
on a `Model` and hands back a `Result`: the decoded images, the model's `Outputs` for them
(named as the SavedModel signatures name them) and how long it queued and ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from app.contract.embedding import EmbeddingSpace
    from app.contract.repository import Manifest
    from app.contract.similarity import SimilarityIndex

Operation = Literal["embed", "classify", "reconstruct", "full"]
"""full: every output of one encoder pass (latent, probabilities, reconstruction, pixels)."""
OPERATIONS: tuple[Operation, ...] = ("embed", "classify", "reconstruct", "full")


@dataclass(frozen=True)
class Outputs:
    """One model call's outputs, one row per image; what an operation does not make is None."""

    latent: np.ndarray | None = None
    """encoder: float32 (n, latent_dim)."""
    probabilities: np.ndarray | None = None
    """classifier: float32 (n, classes)."""
    reconstruction: np.ndarray | None = None
    """decoder: float32 (n, 28, 28), 0-1."""
    pixels: np.ndarray | None = None
    """decoder: the reconstruction as uint8 (n, 28, 28)."""
    ood_score: np.ndarray | None = None
    """float32 (n,) in [0, 1]: how unlike the training images (app.contract.ood); calibrated
    versions only."""

    @property
    def rows_count(self) -> int:
        return len(next(iter(self._present().values())))

    def rows(self, rows: slice) -> Outputs:
        return Outputs(**{name: array[rows] for name, array in self._present().items()})

    @staticmethod
    def concat(parts: Sequence[Outputs]) -> Outputs:
        """Outputs of consecutive calls as one, rows in call order."""
        if len(parts) == 1:
            return parts[0]  # the usual case: no copy
        names = parts[0]._present()
        return Outputs(
            **{name: np.concatenate([p._present()[name] for p in parts]) for name in names}
        )

    def _present(self) -> dict[str, np.ndarray]:
        present = ((name, getattr(self, name)) for name in OUTPUT_NAMES)
        return {name: value for name, value in present if value is not None}


OUTPUT_NAMES = tuple(field.name for field in dataclasses.fields(Outputs))


@dataclass(frozen=True)
class Timing:
    queue_s: float
    """From submission until the model call starts; includes decoding the batch's images."""
    inference_s: float
    """The model call alone."""
    batch_images: int


@dataclass(frozen=True)
class Job:
    """A request's images: how many, and how to decode them (called in a worker thread)."""

    count: int
    prepare: Callable[[], np.ndarray]

    @classmethod
    def of(cls, images: np.ndarray) -> Job:
        """A job for images that are already decoded."""
        return cls(len(images), lambda: images)


@dataclass(frozen=True)
class Result:
    images: np.ndarray
    """The job's decoded images, uint8 (n, 28, 28)."""
    outputs: Outputs
    timing: Timing


class NamedByManifest:
    """Mixin for Model implementations: name and version are the manifest's."""

    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version


class Model(Protocol):
    """A loaded model version (app.models.inference.ModelVersion, or a stand-in without TensorFlow).

    `run` is blocking and thread-safe; callers run it off the event loop. Implementations are
    compared and hashed by identity (a dataclass with eq=False): each load is its own object.
    """

    @property
    def manifest(self) -> Manifest: ...

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def index(self) -> SimilarityIndex | None:
        """The version's similarity index, if it has one."""
        ...

    @property
    def space(self) -> EmbeddingSpace | None:
        """The version's embedding calibration (encodings, dimensions), if it has one."""
        ...

    def run(self, operation: Operation, pixels: np.ndarray) -> Outputs: ...


class Runner(Protocol):
    """Runs jobs on models: unbatched, batched, or (benchmarks) not at all."""

    async def run(self, model: Model, operation: Operation, job: Job) -> Result:
        """The job's images and outputs, or DeadlineExceeded once request_timeout_ms passes."""
        ...

    def retire(self, model: Model) -> None:
        """`model` is no longer served: let its queued work drain, then release it."""
        ...

    async def close(self) -> None: ...
