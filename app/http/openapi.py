"""What /openapi.json says about the bodies FastAPI does not parse itself, and the errors.

The image endpoints take one body in three forms (multipart, a raw image, JSON), so they read
it themselves (app.pipeline.uploads); their request bodies are described here, and the JSON forms'
schemas are the pydantic models of app.pipeline.bodies that validate them.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from app.pipeline.bodies import instances_request, similar_request
from app.protocols.native.schemas import ErrorResponse
from app.protocols.oip.tensors import InferenceRequest

MULTIPART = {
    "schema": {
        "type": "object",
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
            }
        },
        "required": ["file"],
        "additionalProperties": False,
    },
    "encoding": {"file": {"contentType": "image/*"}},
}
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One or more images, in any of three forms.",
        "content": {
            "multipart/form-data": MULTIPART,
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/InstancesRequest"}},
        },
    }
}
SIMILAR_BODY = copy.deepcopy(IMAGE_BODY)
SIMILAR_BODY["requestBody"]["description"] = (
    "Images in any of the three forms, or embeddings as /embed returns them (JSON)."
)
SIMILAR_BODY["requestBody"]["content"]["application/json"]["schema"]["$ref"] = (
    "#/components/schemas/SimilarRequest"
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed request",
        401: "missing or invalid API key (only when keys are configured)",
        404: "unknown model or version (the message lists the served ones)",
        413: "body or image count over the limit",
        415: "unsupported content type",
        422: "undecodable or invalid image or embedding (error.index names it)",
        429: "batch queue full; retry after Retry-After seconds",
        503: "models not loaded yet",
        504: "no result within request_timeout_ms (queue time included)",
    }.items()
}


class PlainError(BaseModel):
    """The error shape of the Open Inference Protocol and of TensorFlow Serving's API."""

    error: str


FOREIGN_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": PlainError, "description": entry["description"]}
    for code, entry in ERRORS.items()
}


def openapi_with_bodies(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the schemas the bodies read by hand refer to (IMAGE_BODY,
    SIMILAR_BODY, the V2 inference request)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        max_images = app.state.settings.max_images
        bodies = (instances_request(max_images), similar_request(max_images), InferenceRequest)
        for model in bodies:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        app.openapi_schema = schema
    return app.openapi_schema
