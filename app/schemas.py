"""Request and response schemas (what /docs shows, and what validates JSON bodies)."""

from __future__ import annotations

import base64
import binascii
from functools import cache
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    create_model,
)

from app.repository import IMAGE_SIDE, PIXEL_RANGE, Signature


class ModelRef(BaseModel):
    name: str
    version: int


class ClassScore(BaseModel):
    label: int
    class_name: str
    confidence: float


class Prediction(BaseModel):
    label: int = Field(description="index of the most probable class")
    class_name: str
    confidence: float = Field(description="probability of that class")
    probabilities: list[float] = Field(description="one probability per class, in label order")
    top_k: list[ClassScore] | None = Field(
        None, description="the k most probable classes, best first (only with ?top_k=k)"
    )


class ClassifyResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction]


class EmbedResponse(BaseModel):
    model: ModelRef
    dim: int = Field(description="length of every embedding")
    embeddings: list[list[float]]


class Reconstruction(BaseModel):
    image_png: str = Field(description="base64 of a 28x28 8-bit grayscale PNG")
    error: float = Field(description="mean squared error against the input, 0-1 pixel scale")


class ReconstructResponse(BaseModel):
    model: ModelRef
    reconstructions: list[Reconstruction]


class Limits(BaseModel):
    max_body_bytes: int
    max_images: int
    max_image_pixels: int
    batching: bool
    max_batch_images: int
    max_batch_delay_ms: float
    max_queue_images: int
    request_timeout_ms: float


class ModelInfo(BaseModel):
    name: str
    version: int
    dataset: dict[str, Any]
    class_names: list[str]
    input: dict[str, Any]
    latent_dim: int
    latent_shape: list[int]
    metrics: dict[str, Any] = Field(description="test-split metrics measured at training")
    signatures: dict[str, Signature]
    created: str
    limits: Limits
    default: bool = Field(description="served when a request names no model")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    models: dict[str, int] = Field(default_factory=dict, description="loaded name -> version")


def _decode_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("b64 must be a string of base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("b64 is not valid base64") from None


Base64File = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class Base64Image(BaseModel):
    model_config = ConfigDict(extra="forbid")

    b64: Base64File = Field(description="base64 of an image file (PNG, JPEG, ...)")


# JSON numbers in 0-255, not strings, booleans, NaN or infinities; rounded to uint8 later.
Pixel = Annotated[
    float, Field(ge=PIXEL_RANGE[0], le=PIXEL_RANGE[1], allow_inf_nan=False, strict=True)
]
PixelRow = Annotated[list[Pixel], Field(min_length=IMAGE_SIDE, max_length=IMAGE_SIDE)]
PixelArray = Annotated[list[PixelRow], Field(min_length=IMAGE_SIDE, max_length=IMAGE_SIDE)]


def _instance_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return "b64"
    return "array" if isinstance(value, list) else None


Instance = Annotated[
    Annotated[Base64Image, Tag("b64")] | Annotated[PixelArray, Tag("array")],
    Discriminator(
        _instance_kind,
        custom_error_type="invalid_instance",
        custom_error_message=f"an instance is a {IMAGE_SIDE}x{IMAGE_SIDE} array of 0-255 "
        'or {"b64": "<base64 of an image file>"}',
    ),
]


@cache
def instances_request(max_images: int) -> type[BaseModel]:
    """The application/json body's model; it documents and validates, `max_images` included."""
    return create_model(
        "InstancesRequest",
        __doc__="application/json body: each instance a base64 image file or a "
        f"{IMAGE_SIDE}x{IMAGE_SIDE} array of 0-255 grayscale values.",
        instances=(Annotated[list[Instance], Field(min_length=1, max_length=max_images)], ...),
    )


class ErrorDetail(BaseModel):
    type: str
    message: str
    index: int | None = Field(None, description="the offending image, 0-based, where one is")


class ErrorResponse(BaseModel):
    error: ErrorDetail
