"""Reading the images out of a request, whatever form they came in.

Three forms: multipart parts named `file`; a raw body with an image/* content type; JSON
`{"instances": [{"b64": ...} | 28x28 array, ...]}`. Parsing is here; pixel work is in
`app.images`, run off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.errors import BadRequest, InvalidImage, PayloadTooLarge, UnsupportedMediaType
from app.images import ImageOptions, decode_image, from_array

FILE_FIELD = "file"
Source = bytes | list[Any]  # an encoded image file, or a JSON pixel array


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _multipart(request: Request, max_images: int) -> list[Source]:
    try:
        # One more file than allowed lets us tell "too many" (413) from other errors (400).
        form = await request.form(max_files=max_images + 1, max_fields=max_images + 1)
    except HTTPException as err:
        if "Too many files" in str(err.detail):
            raise PayloadTooLarge(f"more than {max_images} images (max_images)") from None
        raise BadRequest(f"malformed multipart body: {err.detail}") from None
    sources: list[Source] = []
    try:
        for field, value in form.multi_items():
            if field != FILE_FIELD:
                raise BadRequest(
                    f"unexpected form field {field!r}; send images as parts named {FILE_FIELD!r}"
                )
            if not isinstance(value, UploadFile):
                raise InvalidImage(f"part {FILE_FIELD!r} is not a file", len(sources))
            sources.append(await value.read())
    finally:
        await form.close()
    return sources


def _json_instances(body: bytes) -> list[Source]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"body is not valid JSON: {err}") from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list):
        raise BadRequest('JSON body must be {"instances": [...]}')
    sources: list[Source] = []
    for index, instance in enumerate(instances):
        if isinstance(instance, dict):
            if set(instance) != {"b64"} or not isinstance(instance["b64"], str):
                raise InvalidImage('an object instance must be {"b64": "<base64>"}', index)
            try:
                sources.append(base64.b64decode(instance["b64"], validate=True))
            except (binascii.Error, ValueError):
                raise InvalidImage("b64 is not valid base64", index) from None
        elif isinstance(instance, list):
            sources.append(instance)
        else:
            raise InvalidImage('instance must be a 28x28 array or {"b64": ...}', index)
    return sources


async def read_sources(request: Request, max_images: int) -> list[Source]:
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        sources = await _multipart(request, max_images)
    else:
        body = await request.body()  # bounded by the body-size limit middleware
        if not body:
            raise BadRequest("empty request body; send an image")
        if media_type.startswith("image/"):
            sources = [body]
        elif media_type == "application/json" or media_type.endswith("+json"):
            sources = _json_instances(body)
        else:
            raise UnsupportedMediaType(
                f"unsupported content type {media_type or '(none)'!r}; use multipart/form-data, "
                "an image/* type or application/json"
            )
    if not sources:
        raise BadRequest(f"no images in the request (multipart parts must be named {FILE_FIELD!r})")
    if len(sources) > max_images:
        raise PayloadTooLarge(f"{len(sources)} images; the limit is {max_images} (max_images)")
    return sources


def decode_all(sources: list[Source], options: ImageOptions) -> np.ndarray:
    images = [
        decode_image(source, options, i)
        if isinstance(source, bytes)
        else from_array(source, options, i)
        for i, source in enumerate(sources)
    ]
    return np.stack(images)


async def read_images(request: Request, options: ImageOptions, max_images: int) -> np.ndarray:
    """uint8 (n, 28, 28) in request order, or a typed client error."""
    sources = await read_sources(request, max_images)
    return await run_in_threadpool(decode_all, sources, options)
