"""Response schemas (what /docs shows); request bodies are in app.pipeline.bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.contract.repository import IndexSpec, OodSpec, Signature


class ModelRef(BaseModel):
    name: str
    version: int


class ClassScore(BaseModel):
    label: int
    class_name: str
    confidence: float


class OodVerdict(BaseModel):
    """How unlike the model's training images an input is; null for a version exported
    without an out-of-distribution calibration (its manifest has no `ood`)."""

    ood_score: float | None = Field(
        default=None,
        description="the fraction of held-out in-distribution calibration images that score "
        "lower (about uniform on [0, 1] for the model's own kind of image, near 1 otherwise)",
    )
    in_distribution: bool | None = Field(
        default=None,
        description="false when ood_score is above the threshold (?ood_threshold=, default the "
        "version's, 0.99: about 1% false alarms on the model's own kind of image)",
    )


class Prediction(OodVerdict):
    label: int = Field(description="index of the most probable class")
    class_name: str
    confidence: float = Field(description="probability of that class")
    probabilities: list[float] = Field(description="one probability per class, in label order")
    top_k: list[ClassScore] | None = Field(
        None, description="the k most probable classes, best first (only with ?top_k=k)"
    )


FRAMED = Field(
    None,
    description="with ?debug=framed: each input image as the model saw it (polarity, ground "
    "removed, cropped and fitted), base64 of a 28x28 grayscale PNG, in request order",
)


class ClassifyResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction]
    framed: list[str] | None = FRAMED


class EmbedResponse(BaseModel):
    model: ModelRef
    dim: int = Field(description="values per embedding (before binary packing: bits)")
    encoding: Literal["float32", "base64", "int8", "binary"] = Field(
        "float32", description="how `embeddings` are written (?encoding=)"
    )
    scale: float | None = Field(
        None, description="int8 only: the version's step, a value is int8 x scale"
    )
    embeddings: list[list[float]] | list[str] = Field(
        description="float32: numbers; int8: whole numbers -127..127; binary: the sign bits "
        "packed 8 per byte, first value in the most significant bit, as whole numbers 0..255; "
        "base64: one string per embedding, its float32 little-endian bytes"
    )
    framed: list[str] | None = FRAMED


class Reconstruction(OodVerdict):
    image_png: str = Field(description="base64 of a 28x28 8-bit grayscale PNG")
    error: float = Field(description="mean squared error against the input, 0-1 pixel scale")


class ReconstructResponse(BaseModel):
    model: ModelRef
    reconstructions: list[Reconstruction]
    framed: list[str] | None = FRAMED


class Limits(BaseModel):
    max_body_bytes: int
    max_images: int
    max_image_pixels: int
    batching: bool
    max_batch_images: int
    max_batch_delay_ms: float
    max_queue_images: int
    request_timeout_ms: float


class VersionInfo(BaseModel):
    """One served version, from its manifest."""

    name: str
    version: int
    dataset: dict[str, Any]
    class_names: list[str]
    input: dict[str, Any]
    latent_dim: int
    latent_shape: list[int]
    metrics: dict[str, Any] = Field(description="test-split metrics measured at training")
    signatures: dict[str, Signature]
    index: IndexSpec | None = Field(
        description="the similarity index /similar searches; null: this version has none"
    )
    ood: OodSpec | None = Field(
        description="the out-of-distribution calibration behind ood_score; null: none"
    )
    created: str


class ModelInfo(VersionInfo):
    """A model: its highest served version's details at the top level, every served version
    (highest first) under `versions`."""

    versions: list[VersionInfo]
    version_policy: str = Field(
        description="which versions are served (LATENTSERVE_VERSION_POLICY)"
    )
    limits: Limits
    default: bool = Field(description="served when a request names no model")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    models: dict[str, int] = Field(
        default_factory=dict, description="name -> highest served version"
    )
    versions: dict[str, list[int]] = Field(
        default_factory=dict, description="name -> every served version, highest first"
    )


class Neighbour(BaseModel):
    id: str = Field(description="the reference image: its index in the training split, or path")
    distance: float = Field(description="cosine distance in the index's space (0: same)")
    label: int | None = Field(description="its class, when the reference set is labelled")
    class_name: str | None
    image_png: str | None = Field(
        default=None,
        description="base64 of its 28x28 grayscale PNG, with ?images=true when the index stores "
        "images (the version's index.images)",
    )


class SimilarResponse(BaseModel):
    model: ModelRef
    metric: str = Field(description="the index's distance")
    neighbours: list[list[Neighbour]] = Field(
        description="per query, in request order: its k nearest reference images, nearest first"
    )


class ErrorDetail(BaseModel):
    type: str
    message: str
    index: int | None = Field(None, description="the offending image, 0-based, where one is")


class ErrorResponse(BaseModel):
    error: ErrorDetail
