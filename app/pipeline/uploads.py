"""Reading the images out of a request, whatever form they came in.

Three forms: multipart parts named `file`; a raw body with an image/* content type; JSON
`{"instances": [{"b64": ...} | 28x28 array, ...]}`. Parsing is here, on the event loop;
pixel work is in `app.contract.images`, run in a worker thread as part of the model call's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from app.contract.errors import BadRequest, InvalidImage, PayloadTooLarge, UnsupportedMediaType
from app.contract.images import ImageOptions, decode_image, from_array
from app.core.jobs import Job
from app.pipeline.bodies import Embeddings, Source, json_instances, json_similar

FILE_FIELD = "file"


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

    try:  # the parser refuses some boundaries (too long) already when it is made
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
        parser.write(body)
    except FormParserError as err:
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


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


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
        elif is_json(media_type):
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


def decode_all(sources: Sequence[Source], options: ImageOptions) -> np.ndarray:
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
    return job_of(await read_sources(request, max_images), options)


def job_of(sources: Sequence[Source], options: ImageOptions) -> Job:
    return Job(len(sources), partial(decode_all, sources, options))


async def read_queries(
    request: Request, options: ImageOptions, max_images: int
) -> Job | Embeddings:
    """/similar's queries: images as a Job, as for the other endpoints, or the embeddings of
    a JSON body that sends them instead."""
    if not is_json(_media_type(request)):
        return await read_images(request, options, max_images)
    queries = json_similar(await request.body(), max_images)
    return queries if isinstance(queries, Embeddings) else job_of(queries, options)
