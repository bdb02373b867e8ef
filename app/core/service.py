"""The inference core under every protocol: a typed request in, a typed `Inference` out.

A protocol module parses its request into an `InferenceRequest` (the model version, a job of
images, the outputs it wants), calls `InferenceCore.infer` and renders the `Inference` its own
way. Which graph to run, the derived outputs (labels, reconstruction errors, ood scores) and
the timing metadata every answer carries are decided here, once; errors are the one family of
app.contract.errors. No HTTP here: gRPC is one more translation over the same call.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.contract.errors import ServiceError
from app.contract.images import ImageOptions, Invert
from app.core.jobs import Job, Model, Operation, Outputs, Runner, Timing
from app.settings import Settings


class Output(enum.Enum):
    """What a caller can ask of a model version."""

    EMBEDDING = "embedding"
    PROBABILITIES = "probabilities"
    LABEL = "label"
    RECONSTRUCTION = "reconstruction"
    RECONSTRUCTION_PIXELS = "reconstruction_pixels"
    RECONSTRUCTION_ERROR = "reconstruction_error"
    OOD_SCORE = "ood_score"


# What each graph makes, cheapest first: a request runs the first that makes all it wants.
# Every graph but the bare encoder scores ood from its latents (app.models.inference).
MADE_BY: tuple[tuple[Operation, frozenset[Output]], ...] = (
    ("embed", frozenset({Output.EMBEDDING})),
    ("classify", frozenset({Output.PROBABILITIES, Output.LABEL, Output.OOD_SCORE})),
    (
        "reconstruct",
        frozenset(
            {
                Output.RECONSTRUCTION,
                Output.RECONSTRUCTION_PIXELS,
                Output.RECONSTRUCTION_ERROR,
                Output.OOD_SCORE,
            }
        ),
    ),
    ("full", frozenset(Output)),
)
TIMING_HEADERS = (
    "X-Model-Name",
    "X-Model-Version",
    "X-Queue-Time-Ms",
    "X-Inference-Time-Ms",
    "X-Batch-Images",
)


def operation_for(wanted: frozenset[Output]) -> Operation:
    return next(operation for operation, made in MADE_BY if wanted <= made)


class NotMade(ServiceError):
    """An output read that the request did not ask for: a bug in a protocol module."""


@dataclass(frozen=True)
class InferenceRequest:
    model: Model
    job: Job
    wanted: frozenset[Output]


@dataclass(frozen=True)
class Inference:
    """A request's answer: its decoded images, the model's outputs and how long it took."""

    model: Model
    images: np.ndarray
    """The job's decoded images, uint8 (n, 28, 28): what the model saw."""
    outputs: Outputs
    timing: Timing | None
    """None when nothing ran (a /similar query that was already an embedding)."""

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def embeddings(self) -> np.ndarray:
        """float32 (n, latent_dim)."""
        return _made(self.outputs.latent, Output.EMBEDDING)

    @property
    def probabilities(self) -> np.ndarray:
        """float32 (n, classes)."""
        return _made(self.outputs.probabilities, Output.PROBABILITIES)

    @property
    def labels(self) -> np.ndarray:
        """int64 (n,): the most probable class."""
        return np.asarray(self.probabilities.argmax(axis=1), dtype=np.int64)

    @property
    def reconstructions(self) -> np.ndarray:
        """float32 (n, 28, 28), 0-1."""
        return _made(self.outputs.reconstruction, Output.RECONSTRUCTION)

    @property
    def reconstruction_pixels(self) -> np.ndarray:
        """The reconstructions as uint8 (n, 28, 28), made in the graph."""
        return _made(self.outputs.pixels, Output.RECONSTRUCTION_PIXELS)

    @property
    def reconstruction_errors(self) -> np.ndarray:
        """float32 (n,): each reconstruction's mean squared error on the 0-1 scale."""
        return reconstruction_errors(self.images, self.reconstructions).astype(np.float32)

    @property
    def ood_scores(self) -> np.ndarray | None:
        """float32 (n,) in [0, 1]; None for a version without an ood calibration."""
        return self.outputs.ood_score

    def value(self, output: Output) -> np.ndarray:
        """An output by its enum, for the protocols that let the caller name outputs."""
        match output:
            case Output.EMBEDDING:
                return self.embeddings
            case Output.PROBABILITIES:
                return self.probabilities
            case Output.LABEL:
                return self.labels
            case Output.RECONSTRUCTION:
                return self.reconstructions
            case Output.RECONSTRUCTION_PIXELS:
                return self.reconstruction_pixels
            case Output.RECONSTRUCTION_ERROR:
                return self.reconstruction_errors
            case Output.OOD_SCORE:
                return _made(self.ood_scores, output)

    @property
    def metadata(self) -> dict[str, str]:
        """What every answer carries (HTTP headers; gRPC would send it as metadata)."""
        return timing_metadata(self.model, self.timing)


def reconstruction_errors(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image mean squared error on the 0-1 scale."""
    target = images.astype(np.float32) / 255.0
    return np.asarray(np.mean((reconstructions - target) ** 2, axis=(1, 2)))


def timing_metadata(model: Model, timing: Timing | None) -> dict[str, str]:
    """The model version that answered and how long the request queued and ran."""
    values = {"X-Model-Name": model.name, "X-Model-Version": str(model.version)}
    if timing is not None:
        values["X-Queue-Time-Ms"] = f"{timing.queue_s * 1000:.3f}"
        values["X-Inference-Time-Ms"] = f"{timing.inference_s * 1000:.3f}"
        values["X-Batch-Images"] = str(timing.batch_images)
    return values


def _made(value: np.ndarray | None, output: Output) -> np.ndarray:
    if value is None:
        raise NotMade(f"internal error: the {output.value} output was not asked for")
    return value


class InferenceCore:
    """Runs requests through the runner (batched, supervised, metered) on resolved models."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self.settings = settings
        self.runner = runner

    def image_options(
        self, model: Model, resize: bool = True, invert: Invert = "auto"
    ) -> ImageOptions:
        """How an upload to `model` becomes its input: the version's framing, the limits."""
        return ImageOptions.for_input(
            model.manifest.input, self.settings.max_image_pixels, resize, invert
        )

    async def infer(self, request: InferenceRequest) -> Inference:
        operation = operation_for(request.wanted)
        result = await self.runner.run(request.model, operation, request.job)
        return Inference(request.model, result.images, result.outputs, result.timing)

    async def run(self, model: Model, job: Job, wanted: Sequence[Output]) -> Inference:
        """`infer` without building the request first."""
        return await self.infer(InferenceRequest(model, job, frozenset(wanted)))
