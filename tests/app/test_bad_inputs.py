"""Bad input gets the right 4xx and the one error shape, never a 500, never a crash."""

from __future__ import annotations

import base64
import struct
import zlib

import httpx
import numpy as np
import pytest

from tests.app.conftest import digit_like, png_bytes

GOOD_PNG = png_bytes(digit_like(1))
GOOD_ARRAY = digit_like(1).tolist()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc


def raw(body: bytes, content_type: str | None) -> dict[str, object]:
    return {"content": body, "headers": {"content-type": content_type} if content_type else {}}


def files(*parts: tuple[str, bytes]) -> dict[str, object]:
    return {"files": [(name, ("x.png", data, "image/png")) for name, data in parts]}


def instances(*items: object) -> dict[str, object]:
    return {"json": {"instances": list(items)}}


with_nan = [row[:] for row in GOOD_ARRAY]
with_nan[3][3] = float("nan")
with_string = [row[:] for row in GOOD_ARRAY]
with_string[0][0] = "7"
too_bright = [row[:] for row in GOOD_ARRAY]
too_bright[5][5] = 256
negative = [row[:] for row in GOOD_ARRAY]
negative[5][5] = -1

# (name, request kwargs, status, error type, index)
CASES = [
    ("empty body", raw(b"", "image/png"), 400, "bad_request", None),
    ("empty body no type", raw(b"", None), 400, "bad_request", None),
    ("text file", raw(b"hello, world\n", "text/plain"), 415, "unsupported_media_type", None),
    ("text posing as png", raw(b"hello, world\n", "image/png"), 422, "invalid_image", 0),
    ("truncated png", raw(GOOD_PNG[: len(GOOD_PNG) // 2], "image/png"), 422, "invalid_image", 0),
    ("zero-byte part", files(("file", GOOD_PNG), ("file", b"")), 422, "invalid_image", 1),
    ("wrong field name", files(("image", GOOD_PNG)), 400, "bad_request", None),
    (
        "unknown content type",
        raw(GOOD_PNG, "application/x-foo"),
        415,
        "unsupported_media_type",
        None,
    ),
    ("malformed json", raw(b'{"instances": [', "application/json"), 400, "bad_request", None),
    ("json without instances", {"json": {"images": [GOOD_ARRAY]}}, 400, "bad_request", None),
    ("json empty instances", instances(), 400, "bad_request", None),
    ("json wrong shape", instances(GOOD_ARRAY, [[0] * 27] * 28), 422, "invalid_image", 1),
    ("json flat list", instances(list(range(784))), 422, "invalid_image", 0),
    (
        "json nan",
        raw(
            b'{"instances": [' + str(with_nan).replace("nan", "NaN").encode() + b"]}",
            "application/json",
        ),
        422,
        "invalid_image",
        0,
    ),
    ("json strings", instances(GOOD_ARRAY, with_string), 422, "invalid_image", 1),
    ("json above 255", instances(too_bright), 422, "invalid_image", 0),
    ("json negative", instances(negative), 422, "invalid_image", 0),
    ("json bad base64", instances({"b64": "!!!not base64!!!"}), 422, "invalid_image", 0),
    (
        "json base64 of text",
        instances({"b64": base64.b64encode(b"plain text").decode()}),
        422,
        "invalid_image",
        0,
    ),
    ("json instance is a number", instances(5), 422, "invalid_image", 0),
    ("too many images", files(*[("file", GOOD_PNG)] * 9), 413, "payload_too_large", None),
    ("too many json images", instances(*[GOOD_ARRAY] * 9), 413, "payload_too_large", None),
    ("oversize body", raw(b"\0" * (300 * 1024), "image/png"), 413, "payload_too_large", None),
    (
        "20000x20000 header",
        raw(png_header_only(20000, 20000), "image/png"),
        422,
        "invalid_image",
        0,
    ),
    (
        "multipart cut before its closing boundary",
        raw(
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            + GOOD_PNG,
            "multipart/form-data; boundary=b",
        ),
        400,
        "bad_request",
        None,
    ),
    (
        "multipart field that is not a file",
        raw(
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nhello\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        422,
        "invalid_image",
        0,
    ),
    (
        "multipart with another boundary",
        raw(b"--other\r\n\r\nx\r\n--other--\r\n", "multipart/form-data; boundary=b"),
        400,
        "bad_request",
        None,
    ),
    (
        "multipart without boundary",
        raw(b"--x\r\n", "multipart/form-data"),
        400,
        "bad_request",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "kind", "index"), CASES, ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("endpoint", ["/classify", "/embed", "/reconstruct"])
def test_bad_input(
    client: httpx.Client,
    endpoint: str,
    name: str,
    kwargs: dict,
    status: int,
    kind: str,
    index: int | None,
) -> None:
    response = client.post(endpoint, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert error["message"]
    assert error.get("index") == index
    assert client.get("/healthz").status_code == 200  # the process is still up


def test_chunked_oversize_body_is_cut_off(client: httpx.Client) -> None:
    """No Content-Length: the limit is enforced while the body streams in."""

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b"\0" * 8192

    response = client.post("/embed", content=chunks(), headers={"content-type": "image/png"})
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["error"]["message"]


def test_bad_query_parameter_is_400(client: httpx.Client) -> None:
    response = client.post("/classify?top_k=zero", **instances(GOOD_ARRAY))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "bad_request"


def test_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post("/embed?model=nope", **instances(GOOD_ARRAY))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "model_not_found"


def test_unknown_route_uses_the_error_shape(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert client.get("/classify").status_code == 405


def test_service_still_answers_good_requests_afterwards(client: httpx.Client) -> None:
    response = client.post("/classify", **instances(np.zeros((28, 28), int).tolist()))
    assert response.status_code == 200
