"""Bad input gets the right 4xx and the one error shape, never a 500, never a crash."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import digit_like, png_bytes
from tests.app.corrupt import jpeg_ending_early, png_header_only, png_with_short_stream

GOOD_PNG = png_bytes(digit_like(1))
GOOD_ARRAY = digit_like(1).tolist()
DEEP = 100_000  # levels of nesting: json.loads would raise RecursionError


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
        "png declaring 1x1,000,000 with ten rows of data",
        raw(png_with_short_stream(1, 1_000_000, rows=10), "image/png"),
        422,
        "invalid_image",
        0,
    ),
    (
        "jpeg whose data ends early",
        files(("file", GOOD_PNG), ("file", jpeg_ending_early())),
        422,
        "invalid_image",
        1,
    ),
    (
        "json nested 100,000 levels deep",
        raw(b"[" * DEEP + b"]" * DEEP, "application/json"),
        400,
        "bad_request",
        None,
    ),
    (
        "json instances nested 100,000 levels deep",
        raw(b'{"instances": ' + b"[" * DEEP + b"]" * DEEP + b"}", "application/json"),
        400,
        "bad_request",
        None,
    ),
    (
        "json that is not utf-8",
        raw(b'{"instances": ["\xff\xfe"]}', "application/json"),
        400,
        "bad_request",
        None,
    ),
    ("json b64 that is a number", instances({"b64": 5}), 422, "invalid_image", 0),
    ("json b64 with another key", instances({"b64": "AAAA", "x": 1}), 422, "invalid_image", 0),
    ("json bool pixel", instances([[True] * 28] * 28), 422, "invalid_image", 0),
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


@pytest.mark.parametrize(
    "kwargs",
    [
        raw(png_with_short_stream(1, 1_000_000, rows=10), "image/png"),
        raw(jpeg_ending_early(), "image/jpeg"),
        raw(GOOD_PNG[: len(GOOD_PNG) // 2], "image/png"),
    ],
    ids=["png stream ends early", "jpeg ends early", "png cut in half"],
)
def test_truncated_images_say_so(client: httpx.Client, kwargs: dict) -> None:
    error = client.post("/classify", **kwargs).json()["error"]
    assert error["type"] == "invalid_image"
    assert error["message"].startswith("image is truncated")


def test_json_errors_name_the_instance_and_the_place(client: httpx.Client) -> None:
    bad = [row[:] for row in GOOD_ARRAY]
    bad[3][5] = 300
    error = client.post("/embed", **instances(GOOD_ARRAY, bad)).json()["error"]
    assert error["index"] == 1
    assert error["message"].startswith("instances[1], row 3, column 5:")
    assert "255" in error["message"]


def test_bad_requests_leave_good_ones_answered_exactly_as_before(client: httpx.Client) -> None:
    """The service gives the same answer to a good request before and after every bad one."""
    good = instances(GOOD_ARRAY, digit_like(7).tolist())
    before = client.post("/classify", **good)
    assert before.status_code == 200
    for _, kwargs, status, _, _ in CASES:
        assert client.post("/classify", **kwargs).status_code == status
    after = client.post("/classify", **good)
    assert after.status_code == 200
    assert after.json() == before.json()


def _picture(pixels: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(buffer, format=fmt)
    return buffer.getvalue()


def _hard_pictures() -> dict[str, tuple[bytes, set[int]]]:
    """Pictures that are hard to frame, and the answers each may get: a prediction, or a 422
    for a picture in which nothing stands out (documented in the README)."""
    rng = np.random.default_rng(0)
    page = np.full((300, 220), 245, np.uint8)
    photo = np.clip(rng.normal(128, 4, (240, 320)), 0, 255).astype(np.uint8)
    stripes = np.full((90, 90), 60, np.uint8)
    stripes[::3] = 200
    line = np.full((200, 200), 240, np.uint8)
    line[100, 30:170] = 20
    wide = (digit_like(2).astype(np.uint16) * 257).repeat(3, 0).repeat(3, 1)
    cutout = np.zeros((80, 80, 4), np.uint8)
    cutout[..., :3] = (0, 160, 0)
    cutout[20:60, 30:50] = (20, 20, 20, 255)
    return {
        "blank page": (_picture(page), {422}),
        "nearly uniform photo": (_picture(photo, "JPEG"), {200, 422}),
        "item touching every border": (_picture(stripes), {200}),
        "one-pixel line": (_picture(line), {200}),
        "16-bit PNG": (_picture(wide), {200}),
        "CMYK JPEG": (
            _picture(255 - digit_like(5).repeat(4, 0).repeat(4, 1), "JPEG", "CMYK"),
            {200},
        ),
        "transparent cut-out on a coloured ground": (_picture(cutout), {200}),
    }


@pytest.mark.parametrize("name", list(_hard_pictures()))
@pytest.mark.parametrize("endpoint", ["/classify", "/embed", "/reconstruct"])
def test_hard_pictures_get_an_answer_never_a_5xx(
    client: httpx.Client, name: str, endpoint: str
) -> None:
    data, allowed = _hard_pictures()[name]
    response = client.post(endpoint, files={"file": ("x", data, "image/png")})
    assert response.status_code in allowed, response.text
    if response.status_code == 422:
        error = response.json()["error"]
        assert error["type"] == "invalid_image" and error["index"] == 0
        assert "stands out from its ground" in error["message"]
    assert client.get("/healthz").status_code == 200
