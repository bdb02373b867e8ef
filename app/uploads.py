"""Reading the images out of a request, whatever form they came in.

Three forms: multipart parts named `file`; a raw body with an image/* content type; JSON
`{"instances": [{"b64": ...} | 28x28 array, ...]}`. Parsing is here, on the event loop;
pixel work is in `app.images`, run in a worker thread as part of the model call's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from app.errors import (
    BadRequest,
    InvalidImage,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from app.images import ImageOptions, decode_image, from_array
from app.jobs import Job
from app.schemas import Base64Image, instances_request

FILE_FIELD = "file"
Source = bytes | list[list[float]]  # an encoded image file, or a validated JSON pixel array


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class _Part:
    name: bytes = b""
    filename: bytes | None = None
    data: list[bytes] = field(default_factory=list)


def parse_multipart(body: bytes, content_type: str, max_images: int) -> list[Source]:
    """The files of a multipart body, in order: parts named `file` that carry a filename.

    python-multipart's parser straight on the (size-limited) body: Starlette's form parser
    spools every part into a temporary-file object, which cost 3x as much per request
    (docs/benchmarks.md).
    """
    _, params = parse_options_header(content_type)
    if not params.get(b"boundary"):
        raise BadRequest("malformed multipart body: no boundary in the content type")
    parts: list[_Part] = []
    header_name: list[bytes] = []  # a header may arrive in pieces
    header_value: list[bytes] = []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        if b"".join(header_name).lower() == b"content-disposition":
            _, options = parse_options_header(b"".join(header_value))
            parts[-1].name, parts[-1].filename = options.get(b"name", b""), options.get(b"filename")
        header_name.clear()
        header_value.clear()

    def on_part_begin() -> None:
        if len(parts) == max_images:
            raise PayloadTooLarge(f"more than {max_images} images (max_images)")
        parts.append(_Part())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.append(data[start:end])

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
    except MultipartParseError as err:
        raise BadRequest(f"malformed multipart body: {err}") from None
    if parser.state != MultipartState.END:
        raise BadRequest("malformed multipart body: it ends before the closing boundary")
    sources: list[Source] = []
    for part in parts:
        if part.name != FILE_FIELD.encode():
            raise BadRequest(
                f"unexpected form field {part.name.decode('latin-1')!r}; send images as parts "
                f"named {FILE_FIELD!r}"
            )
        if part.filename is None:
            raise InvalidImage(f"part {FILE_FIELD!r} is not a file", len(sources))
        sources.append(b"".join(part.data))
    return sources


def _where(loc: tuple[int | str, ...]) -> str:
    """('instances', 2, 'array', 3, 5) -> 'instances[2], row 3, column 5'."""
    parts = [f"instances[{loc[1]}]"]
    rest = [p for p in loc[2:] if p != "array"]  # the union's tag, not a place in the body
    for name, value in zip(("row", "column"), rest, strict=False):
        parts.append(f"{name} {value}" if isinstance(value, int) else str(value))
    return ", ".join(parts)


def _json_error(error: ErrorDetails, max_images: int) -> ServiceError:
    """A validation error of the JSON body in the service's error shape: a bad instance is
    a 422 naming its index; too many instances 413; anything else about the body 400."""
    loc, message = tuple(error["loc"]), error["msg"]
    if error["type"] == "json_invalid":
        return BadRequest(f"body is not valid JSON: {message}")
    if len(loc) >= 2 and loc[0] == "instances" and isinstance(loc[1], int):
        return InvalidImage(f"{_where(loc)}: {message}", loc[1])
    if loc == ("instances",) and error["type"] == "too_long":
        return PayloadTooLarge(f"more than {max_images} images (max_images)")
    where = ".".join(map(str, loc)) or "body"
    return BadRequest(f'JSON body must be {{"instances": [...]}}; {where}: {message}')


def json_instances(body: bytes, max_images: int) -> list[Source]:
    """The instances of a JSON body, validated by the schema that documents them."""
    try:
        request = instances_request(max_images).model_validate_json(body)
    except ValidationError as err:
        raise _json_error(err.errors()[0], max_images) from None
    return [
        instance.b64 if isinstance(instance, Base64Image) else instance
        for instance in request.instances  # type: ignore[attr-defined]
    ]


async def read_sources(request: Request, max_images: int) -> list[Source]:
    media_type = _media_type(request)
    body = await request.body()  # bounded by the body-size limit middleware
    if media_type == "multipart/form-data":
        sources = parse_multipart(body, request.headers["content-type"], max_images)
    else:
        if not body:
            raise BadRequest("empty request body; send an image")
        if media_type.startswith("image/"):
            sources = [body]
        elif media_type == "application/json" or media_type.endswith("+json"):
            sources = json_instances(body, max_images)
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


async def read_images(request: Request, options: ImageOptions, max_images: int) -> Job:
    """The request's images as a job that decodes them to uint8 (n, 28, 28) in request order.

    Parsing errors are raised here; decoding errors (422) when the job runs, in the worker
    thread that also makes the model call.
    """
    sources = await read_sources(request, max_images)
    return Job(len(sources), partial(decode_all, sources, options))
