"""Open Inference Protocol (V2) tensors: the request and response bodies, JSON or binary.

A request is a JSON object, optionally followed by binary tensor data (Triton's binary tensor
data extension: `Inference-Header-Content-Length` gives the JSON's length, every input with a
`binary_data_size` parameter takes that many bytes of what follows, in input order). BYTES
elements are 4-byte little-endian lengths and their bytes when binary, base64 strings in JSON
(a JSON string cannot carry an image file's raw bytes).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.contract.errors import BadRequest, InvalidImage, PayloadTooLarge
from app.contract.repository import IMAGE_SIDE

BYTES_INPUT, PIXELS_INPUT = "images", "pixels"
NUMPY = {"UINT8": np.uint8, "INT8": np.int8, "INT64": np.int64, "FP32": np.float32}
Params = dict[str, Any]


# Strict: V2 data are typed by the protocol, so a string where a number belongs (or a boolean
# where an integer does) is a malformed request, not something to coerce.
STRICT = ConfigDict(strict=True)


class RequestInput(BaseModel):
    model_config = STRICT

    name: str
    shape: list[int]
    datatype: str
    parameters: Params | None = None
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    model_config = STRICT

    name: str
    parameters: Params | None = None


class InferenceRequest(BaseModel):
    """POST /v2/models/{model}[/versions/{version}]/infer (binary tensor data may follow)."""

    model_config = STRICT

    id: str | None = None
    parameters: Params | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


@dataclass(frozen=True)
class Images:
    """The request's one input, as image files (BYTES) or ready pixels (UINT8)."""

    files: list[bytes] | None = None
    pixels: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.files) if self.files is not None else len(self.pixels)  # type: ignore[arg-type]


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The JSON part of a request, and the binary data after it."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(
            body
        ):
            raise BadRequest(
                f"Inference-Header-Content-Length {header_length!r} does not fit a body of "
                f"{len(body)} bytes"
            )
        json_part, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        return InferenceRequest.model_validate_json(json_part), binary
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise BadRequest(f"invalid inference request: {where}: {first['msg']}") from None


def _split_bytes(raw: bytes, count: int, name: str) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"input {name!r}: a BYTES element's length is cut off")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise BadRequest(f"input {name!r}: a BYTES element says {size} bytes; fewer follow")
        elements.append(raw[offset : offset + size])
        offset += size
    if len(elements) != count:
        raise BadRequest(
            f"input {name!r}: shape says {count} elements, the data holds {len(elements)}"
        )
    return elements


def _json_bytes(data: list[Any], count: int, name: str) -> list[bytes]:
    flat = list(np.asarray(data, dtype=object).ravel())
    if len(flat) != count or not all(isinstance(e, str) for e in flat):
        raise BadRequest(f"input {name!r}: BYTES data must be {count} base64 strings")
    try:
        return [base64.b64decode(e, validate=True) for e in flat]
    except (binascii.Error, ValueError):
        raise BadRequest(f"input {name!r}: BYTES data in JSON must be base64") from None


def read_images(request: InferenceRequest, binary: bytes, max_images: int) -> Images:
    """The one input: BYTES images [N] or [N, 1], or UINT8 pixels [N, 28, 28(, 1)]."""
    if len(request.inputs) != 1:
        raise BadRequest(
            f"send one input: {BYTES_INPUT!r} (BYTES image files) or {PIXELS_INPUT!r} (UINT8)"
        )
    tensor = request.inputs[0]
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):  # a bool is no size
        raise BadRequest(f"input {tensor.name!r}: binary_data_size must be a whole number")
    raw = None if size is None else binary[:size]
    if (size or 0) != len(binary):
        raise BadRequest(
            f"the body holds {len(binary)} bytes of binary data; the inputs declare {size or 0}"
        )
    expected = {BYTES_INPUT: "BYTES", PIXELS_INPUT: "UINT8"}.get(tensor.name)
    if expected is None or tensor.datatype != expected:
        raise BadRequest(
            f"input {tensor.name!r} ({tensor.datatype}): expected {BYTES_INPUT!r} BYTES [N] or "
            f"[N, 1], or {PIXELS_INPUT!r} UINT8 [N, {IMAGE_SIDE}, {IMAGE_SIDE}]"
        )
    count = tensor.shape[0] if tensor.shape else 0
    if count > max_images:
        raise PayloadTooLarge(f"{count} images; the limit is {max_images} (max_images)")
    if count < 1:
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} holds no image")
    if raw is None and tensor.data is None:
        raise BadRequest(f"input {tensor.name!r} has neither data nor binary_data_size")
    if tensor.datatype == "BYTES":
        if tensor.shape not in ([count], [count, 1]):
            raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape}, expected [N] or [N, 1]")
        files = (
            _split_bytes(raw, count, tensor.name)
            if raw is not None
            else _json_bytes(tensor.data or [], count, tensor.name)
        )
        return Images(files=files)
    if tensor.shape not in ([count, IMAGE_SIDE, IMAGE_SIDE], [count, IMAGE_SIDE, IMAGE_SIDE, 1]):
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape}, expected [N, {IMAGE_SIDE}, "
            f"{IMAGE_SIDE}] or [N, {IMAGE_SIDE}, {IMAGE_SIDE}, 1]"
        )
    values = np.frombuffer(raw, np.uint8) if raw is not None else _json_uint8(tensor)
    if values.size != count * IMAGE_SIDE * IMAGE_SIDE:
        raise BadRequest(f"input {tensor.name!r}: {values.size} values for shape {tensor.shape}")
    return Images(pixels=values.reshape(count, IMAGE_SIDE, IMAGE_SIDE))


def _json_uint8(tensor: RequestInput) -> np.ndarray:
    """UINT8 data sent as JSON (flat, or nested as the shape): whole numbers 0-255 only; not
    strings, booleans, fractions, infinities or numbers out of range."""
    flat = np.asarray(tensor.data, dtype=object).ravel()  # a ragged nesting leaves lists in it
    wrong = [v for v in flat if type(v) is not int or not 0 <= v <= 255][:1]
    if wrong:  # (a list, as the wrong value may itself be None)
        shown = repr(wrong[0])[:40]
        raise InvalidImage(
            f"input {tensor.name!r}: UINT8 data must be whole numbers 0-255, not {shown}"
        )
    return np.asarray(flat.tolist(), dtype=np.uint8)


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    array: np.ndarray  # for BYTES: an object array of bytes
    parameters: dict[str, Any] | None = None


def raw_bytes(tensor: Tensor) -> bytes:
    """A tensor's elements as binary data: Triton's binary extension, gRPC's raw contents."""
    if tensor.datatype != "BYTES":  # little-endian, row-major, no padding
        little = np.dtype(NUMPY[tensor.datatype]).newbyteorder("<")
        return np.ascontiguousarray(tensor.array, dtype=little).tobytes()
    return b"".join(struct.pack("<I", len(e)) + e for e in tensor.array.ravel())


def encode_response(
    tensors: list[Tensor], binary: set[str], header: dict[str, Any]
) -> tuple[bytes, int | None]:
    """The response body and, when some outputs are binary, the JSON part's length."""
    outputs, blobs = [], []
    for tensor in tensors:
        out: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.array.shape),
        }
        if tensor.parameters:
            out["parameters"] = dict(tensor.parameters)
        if tensor.name in binary:
            blob = raw_bytes(tensor)
            out["parameters"] = {**out.get("parameters", {}), "binary_data_size": len(blob)}
            blobs.append(blob)
        elif tensor.datatype == "BYTES":
            out["data"] = [e.decode() for e in tensor.array.ravel()]
        else:
            out["data"] = np.ascontiguousarray(tensor.array).ravel()
        outputs.append(out)
    body = orjson.dumps({**header, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return body, None
    return body + b"".join(blobs), len(body)
