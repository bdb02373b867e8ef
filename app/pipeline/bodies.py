"""Request bodies: the pydantic models that validate JSON bodies and document them.

Image endpoints take `{"instances": [...]}`; `/similar` also takes embeddings instead,
`{"embedding": [...]}` or `{"embeddings": [[...], ...]}` (vectors as /embed returns them).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails

from app.contract.errors import (
    BadRequest,
    InvalidEmbedding,
    InvalidImage,
    PayloadTooLarge,
    ServiceError,
)
from app.contract.repository import IMAGE_SIDE, PIXEL_RANGE

Source = bytes | list[list[float]]  # an encoded image file, or a validated JSON pixel array


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


FLOAT32_MAX = float(np.finfo(np.float32).max)  # embeddings are float32: larger is no embedding
Component = Annotated[
    float, Field(allow_inf_nan=False, strict=True, ge=-FLOAT32_MAX, le=FLOAT32_MAX)
]
Vector = Annotated[list[Component], Field(min_length=1)] | Annotated[str, Field(min_length=1)]
"""An embedding as /embed returns it: its values, or (encoding=base64, or any encoding's
bytes) a base64 string."""


class EmbeddingFields(BaseModel):
    """The embedding forms of a /similar body (exactly one of them, or instances)."""

    embedding: Vector | None = Field(None, description="one embedding, as /embed returns it")
    embeddings: list[Vector] | None = Field(None, description="several embeddings")

    def vectors(self) -> list[list[float] | str] | None:
        if self.embedding is not None:
            return [self.embedding]
        return self.embeddings


@cache
def similar_request(max_images: int) -> type[EmbeddingFields]:
    """The /similar JSON body: images as instances, or embeddings, one form per request."""
    bounded = Field(min_length=1, max_length=max_images)

    class SimilarRequest(EmbeddingFields):
        """application/json body of /similar: images (as for the other endpoints) or
        embeddings as /embed returns them; exactly one of the three fields."""

        instances: Annotated[list[Instance], bounded] | None = None
        embeddings: Annotated[list[Vector], bounded] | None = Field(
            None, description="several embeddings"
        )

        @model_validator(mode="after")
        def _one_form(self) -> SimilarRequest:
            forms = [
                f for f in ("instances", "embedding", "embeddings") if getattr(self, f) is not None
            ]
            if len(forms) != 1:
                raise ValueError(
                    'send exactly one of "instances", "embedding" or "embeddings", not '
                    f"{forms or 'none'}"
                )
            return self

    return SimilarRequest


def _where(loc: tuple[int | str, ...]) -> str:
    """('instances', 2, 'array', 3, 5) -> 'instances[2], row 3, column 5';
    ('embeddings', 1, 7) -> 'embeddings[1], component 7'."""
    if loc[0] == "embedding":
        return ", ".join(["embedding", *(f"component {c}" for c in loc[1:2])])
    parts = [f"{loc[0]}[{loc[1]}]"]
    rest = [p for p in loc[2:] if p != "array"]  # the union's tag, not a place in the body
    places = ("row", "column") if loc[0] == "instances" else ("component",)
    for name, value in zip(places, rest, strict=False):
        parts.append(f"{name} {value}" if isinstance(value, int) else str(value))
    return ", ".join(parts)


def _union_tag(part: int | str) -> bool:
    """pydantic's name for the branch of a union in an error's place (an embedding given as
    values or as a base64 string): not a place in the body."""
    return isinstance(part, str) and ("[" in part or part.startswith("constrained-"))


def _json_error(error: ErrorDetails, max_images: int) -> ServiceError:
    """A validation error of the JSON body in the service's error shape: a bad instance or
    embedding is a 422 naming its index; too many of them 413; anything else 400."""
    loc, message = tuple(p for p in error["loc"] if not _union_tag(p)), error["msg"]
    if error["type"] == "json_invalid":
        return BadRequest(f"body is not valid JSON: {message}")
    if loc[:1] == ("embedding",) and len(loc) >= 2:
        return InvalidEmbedding(f"{_where(loc)}: {message}", 0)
    if len(loc) >= 2 and loc[0] in ("instances", "embeddings") and isinstance(loc[1], int):
        kind = InvalidImage if loc[0] == "instances" else InvalidEmbedding
        return kind(f"{_where(loc)}: {message}", loc[1])
    if len(loc) == 1 and loc[0] in ("instances", "embeddings") and error["type"] == "too_long":
        return PayloadTooLarge(f"more than {max_images} {loc[0]} (max_images)")
    where = ".".join(map(str, loc)) or "body"
    return BadRequest(f'JSON body must be {{"instances": [...]}}; {where}: {message}')


def _validated(model: type[BaseModel], body: bytes | dict[str, Any], max_images: int) -> Any:
    try:
        if isinstance(body, dict):
            return model.model_validate(body)
        return model.model_validate_json(body)
    except ValidationError as err:
        raise _json_error(err.errors()[0], max_images) from None


def _sources(instances: list[Any]) -> list[Source]:
    return [i.b64 if isinstance(i, Base64Image) else i for i in instances]


def json_instances(body: bytes | dict[str, Any], max_images: int) -> list[Source]:
    """The instances of a JSON body (or of an already parsed one, for the other protocols),
    validated by the schema that documents them."""
    return _sources(_validated(instances_request(max_images), body, max_images).instances)


@dataclass(frozen=True)
class Embeddings:
    """Queries sent as embeddings (/similar), as sent: value lists or base64 strings, read
    in the request's encoding by app.contract.embedding.embedding_values."""

    rows: list[list[float] | str]


def json_similar(body: bytes, max_images: int) -> list[Source] | Embeddings:
    """A /similar JSON body: its image instances, or its embeddings."""
    request = _validated(similar_request(max_images), body, max_images)
    vectors = request.vectors()
    if vectors is None:
        return _sources(request.instances)
    return Embeddings(vectors)
