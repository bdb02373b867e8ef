"""Every front door fuzzed against the real server: OIP V2 REST, TensorFlow Serving REST, the
framing of any request (Content-Length, chunked, multipart boundaries, encodings), and the URLs
under each protocol's prefix.

Each malformed request is built from a valid one by one mutation, so the answer must be a
4xx, never a 5xx and never a 200; in the protocol's own error shape ({"error": "<message>"}
under /v1 and /v2, {"error": {"type", "message"}} elsewhere); within a time bound; and the
server must be healthy after it. Arbitrary JSON must never make a 5xx either.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.conftest import digit_like, png_bytes, wait_ready

EXAMPLES = 80  # arbitrary JSON
MUTATIONS = 200  # one-mutation requests per protocol
TIME_BOUND_S = 10.0
MAX_IMAGES = 8  # tests/app/conftest.py settings
FUZZ = settings(
    max_examples=MUTATIONS,
    deadline=None,
    derandomize=True,  # the same cases in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PNG = base64.b64encode(png_bytes(digit_like(0))).decode()
PIXELS = digit_like(1).astype(int).tolist()
INFER = "/v2/models/mnist/infer"
PREDICT = "/v1/models/mnist:predict"


@pytest.fixture
def fuzz_client(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=TIME_BOUND_S)
    wait_ready(client)
    return client


def plain_shape(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body


def native_shape(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert isinstance(error, dict) and {"type", "message"} <= set(error), error


def refused(client: httpx.Client, response: httpx.Response, shape: Any = plain_shape) -> None:
    """A malformed request's answer: a 4xx in the protocol's shape; the server still healthy."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    shape(response)
    assert response.elapsed.total_seconds() < TIME_BOUND_S
    assert client.get("/healthz").status_code == 200


def post_json(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, content=text, headers={"content-type": "application/json"})


# --- OIP V2: a valid request, then one thing wrong with it ---------------------------------


def valid_infer(kind: str) -> dict[str, Any]:
    if kind == "images":
        tensor = {"name": "images", "datatype": "BYTES", "shape": [1], "data": [PNG]}
    else:
        tensor = {"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": PIXELS}
    return {"inputs": [tensor], "outputs": [{"name": "label"}]}


WRONG_TYPES = st.sampled_from(["1", True, False, None, 1.5, [1], {"a": 1}, -1, 2**70])
OUT_OF_RANGE = st.sampled_from(["-1", "256", "1e400", "-1e400", "1e20", "-1e20", "0.5", "NaN"])


def _set_pixel(body: dict[str, Any], raw: str) -> str:
    """The body as JSON text with one pixel value replaced by `raw` text (JSON has no way to
    write 1e400 as a number that Python's json would keep)."""
    body["inputs"][0]["data"][3][4] = 123456789
    return json.dumps(body).replace("123456789", raw, 1)


@st.composite
def malformed_infer(draw: st.DrawFn) -> tuple[str, str | dict[str, Any], int | None]:
    """(what is wrong, the body, the status it must get or None for any 4xx)."""
    kind = draw(st.sampled_from(["images", "pixels"]))
    body = valid_infer(kind)
    tensor = body["inputs"][0]
    mutation = draw(
        st.sampled_from(
            [
                "datatype",
                "shape value",
                "shape length",
                "shape type",
                "data element",
                "pixel text",
                "count",
                "binary flag",
                "output binary flag",
                "classification",
                "binary size",
                "id type",
                "name type",
                "inputs",
            ]
        )
    )
    if mutation == "datatype":
        others = [
            "FP32",
            "INT64",
            "BOOL",
            "",
            "uint8",
            "bytes",
            "UINT8" if kind == "images" else "BYTES",
        ]
        tensor["datatype"] = draw(st.sampled_from(others))
    elif mutation == "shape value":
        tensor["shape"][0] = draw(st.sampled_from([0, 2, 3, -1]))
    elif mutation == "shape length":
        tensor["shape"] = tensor["shape"] + [draw(st.sampled_from([2, 3, 28]))]
    elif mutation == "shape type":
        tensor["shape"][0] = draw(WRONG_TYPES.filter(lambda v: type(v) is not int))
    elif mutation == "data element":
        wrong = draw(WRONG_TYPES)
        if kind == "images":
            tensor["data"][0] = wrong if wrong != "1" else "not base64 !"
        else:
            if type(wrong) is int and 0 <= wrong <= 255:
                wrong = 256
            tensor["data"][2][2] = wrong
    elif mutation == "pixel text":
        return mutation, _set_pixel(valid_infer("pixels"), draw(OUT_OF_RANGE)), None
    elif mutation == "count":
        count = MAX_IMAGES + draw(st.integers(1, 5))
        tensor["shape"][0] = count
        tensor["data"] = tensor["data"] * count if kind == "images" else [PIXELS] * count
        return mutation, body, 413
    elif mutation == "binary flag":
        body["parameters"] = {"binary_data_output": draw(WRONG_TYPES.filter(_not_bool))}
    elif mutation == "output binary flag":
        body["outputs"][0]["parameters"] = {"binary_data": draw(WRONG_TYPES.filter(_not_bool))}
    elif mutation == "classification":
        wrong = draw(st.sampled_from(["2", True, 2.5, -1, [2], {"n": 2}]))
        body["outputs"] = [{"name": "probabilities", "parameters": {"classification": wrong}}]
    elif mutation == "binary size":
        tensor["parameters"] = {"binary_data_size": draw(st.sampled_from([True, "5", -1, 1.5]))}
    elif mutation == "id type":
        body["id"] = draw(st.sampled_from([1, True, ["a"], {"a": 1}]))
    elif mutation == "name type":
        body["outputs"][0]["name"] = draw(st.sampled_from([1, None, True, "no-such-output"]))
    else:  # inputs: none, two, not a list
        body["inputs"] = draw(st.sampled_from([[], [tensor, tensor], tensor, "images"]))
    return mutation, body, None


def _not_bool(value: object) -> bool:
    return not isinstance(value, bool)


def test_the_valid_requests_the_mutations_start_from_are_answered(
    fuzz_client: httpx.Client,
) -> None:
    for kind in ("images", "pixels"):
        response = post_json(fuzz_client, INFER, valid_infer(kind))
        assert response.status_code == 200, response.text
    ok = post_json(fuzz_client, PREDICT, {"instances": [{"b64": PNG}]})
    assert ok.status_code == 200, ok.text


@FUZZ
@given(case=malformed_infer())
def test_v2_infer_refuses_every_malformed_request(
    fuzz_client: httpx.Client, case: tuple[str, str | dict[str, Any], int | None]
) -> None:
    _, body, status = case
    response = post_json(fuzz_client, INFER, body)
    refused(fuzz_client, response)
    if status is not None:
        assert response.status_code == status


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=60,
)


@settings(FUZZ, max_examples=EXAMPLES)
@given(body=json_values, url=st.sampled_from([INFER, PREDICT, "/v1/models/mnist:classify"]))
def test_any_json_gets_no_server_error(fuzz_client: httpx.Client, body: Any, url: str) -> None:
    response = fuzz_client.post(
        url, content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        plain_shape(response)
    assert fuzz_client.get("/healthz").status_code == 200


# --- TensorFlow Serving REST ----------------------------------------------------------------


@st.composite
def malformed_predict(draw: st.DrawFn) -> tuple[str, dict[str, Any], int | None]:
    mutation = draw(
        st.sampled_from(["instance", "signature", "both", "neither", "count", "pixel", "named"])
    )
    body: dict[str, Any] = {"instances": [{"b64": PNG}]}
    if mutation == "instance":
        body["instances"] = [draw(WRONG_TYPES)]
    elif mutation == "signature":
        body["signature_name"] = draw(
            st.sampled_from([1, True, None, "no-such-signature", ["embed"]])
        )
    elif mutation == "both":
        body["inputs"] = [{"b64": PNG}]
    elif mutation == "neither":
        body = {"signature_name": "embed"}
    elif mutation == "count":
        body["instances"] = [{"b64": PNG}] * (MAX_IMAGES + draw(st.integers(1, 5)))
        return mutation, body, 413
    elif mutation == "pixel":
        pixels = [row[:] for row in PIXELS]
        pixels[5][5] = draw(st.sampled_from([256, -1, 1.5, "7", True, None]))
        body["instances"] = [pixels]
    else:
        body["instances"] = [{"pixels": draw(WRONG_TYPES)}]
    return mutation, body, None


@FUZZ
@given(case=malformed_predict(), verb=st.sampled_from([":predict", ":classify"]))
def test_tf_serving_refuses_every_malformed_request(
    fuzz_client: httpx.Client, case: tuple[str, dict[str, Any], int | None], verb: str
) -> None:
    mutation, body, status = case
    if verb == ":classify" and mutation == "both":
        return  # :classify has no columnar form to send both of
    if verb == ":classify":  # the same inputs, as examples
        body = {k: v for k, v in body.items() if k != "instances"} | {
            "examples": body.get("instances", [])
        }
    response = post_json(fuzz_client, f"/v1/models/mnist{verb}", body)
    refused(fuzz_client, response)
    if status is not None:
        assert response.status_code == status


# --- The same condition, the same status, each protocol's shape ------------------------------


def test_too_many_images_is_a_413_on_every_protocol(fuzz_client: httpx.Client) -> None:
    count = MAX_IMAGES + 1
    png = png_bytes(digit_like(2))
    native = fuzz_client.post(
        "/classify", files=[("file", (f"{i}.png", png)) for i in range(count)]
    )
    refused(fuzz_client, native, native_shape)
    v2 = valid_infer("images")
    v2["inputs"][0]["shape"], v2["inputs"][0]["data"] = [count], [PNG] * count
    v1 = {"instances": [{"b64": PNG}] * count}
    for response in (post_json(fuzz_client, INFER, v2), post_json(fuzz_client, PREDICT, v1)):
        refused(fuzz_client, response)
    assert {r.status_code for r in (native, post_json(fuzz_client, INFER, v2))} == {413}
    assert post_json(fuzz_client, PREDICT, v1).status_code == 413


@pytest.mark.parametrize(
    ("method", "url", "shape"),
    [
        ("GET", "/v2/nowhere", plain_shape),
        ("GET", "/v2/models/mnist/versions/1/nowhere", plain_shape),
        ("DELETE", "/v2/models/mnist/infer", plain_shape),
        ("GET", "/v1/models/mnist/nowhere", plain_shape),
        ("PUT", "/v1/models/mnist:predict", plain_shape),
        ("GET", "/nowhere", native_shape),
        ("GET", "/classify", native_shape),
    ],
)
def test_unmatched_urls_answer_in_their_protocols_shape(
    fuzz_client: httpx.Client, method: str, url: str, shape: Any
) -> None:
    refused(fuzz_client, fuzz_client.request(method, url), shape)


@pytest.mark.parametrize(
    ("url", "shape"), [(INFER, plain_shape), (PREDICT, plain_shape), ("/embed", native_shape)]
)
def test_the_body_limit_answers_in_each_protocols_shape(
    fuzz_client: httpx.Client, url: str, shape: Any
) -> None:
    response = fuzz_client.post(
        url, content=b"x" * (256 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    refused(fuzz_client, response, shape)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-unknown"])
@pytest.mark.parametrize(("url", "shape"), [(INFER, plain_shape), ("/classify", native_shape)])
def test_a_compressed_body_is_a_415(
    fuzz_client: httpx.Client, encoding: str, url: str, shape: Any
) -> None:
    response = fuzz_client.post(
        url,
        content=b"\x1f\x8b\x08\x00",
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert response.status_code == 415
    refused(fuzz_client, response, shape)


# --- Framing, on a raw socket ---------------------------------------------------------------


def raw(base_url: str, request: bytes) -> int:
    """Send bytes as they are; the status code of the answer (0: closed without one)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIME_BOUND_S) as conn:
        conn.sendall(request)
        started, answer = time.monotonic(), b""
        while b"\r\n" not in answer and time.monotonic() - started < TIME_BOUND_S:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _request(url: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {url} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


JSON_BODY = json.dumps(valid_infer("images")).encode()
FRAMINGS = {
    "content-length not a number": ({"Content-Length": "abc"}, JSON_BODY),
    "content-length a superscript digit": ({"Content-Length": "\u00b2"}, JSON_BODY),
    "content-length negative": ({"Content-Length": "-5"}, JSON_BODY),
    "two content-lengths that differ": ({"Content-Length": "5, 6"}, JSON_BODY),
    "chunk size not hex": ({"Transfer-Encoding": "chunked"}, b"zz\r\nab\r\n0\r\n\r\n"),
    "chunk longer than said": ({"Transfer-Encoding": "chunked"}, b"2\r\nabcdef\r\n0\r\n\r\n"),
    "unknown transfer encoding": ({"Transfer-Encoding": "gzip, chunked"}, b"0\r\n\r\n"),
    "header length a superscript digit": (
        {"Inference-Header-Content-Length": "\u00b2", "Content-Length": str(len(JSON_BODY))},
        JSON_BODY,
    ),
    "header length beyond the body": (
        {"Inference-Header-Content-Length": "99999", "Content-Length": str(len(JSON_BODY))},
        JSON_BODY,
    ),
}


@pytest.mark.parametrize("case", sorted(FRAMINGS))
def test_bad_framing_is_a_4xx(base_url: str, fuzz_client: httpx.Client, case: str) -> None:
    headers, body = FRAMINGS[case]
    headers = {"Content-Type": "application/json", **headers}
    status = raw(base_url, _request(INFER, headers, body))
    assert 400 <= status < 500, (case, status)
    assert fuzz_client.get("/healthz").status_code == 200


MAX_BOUNDARY = 256  # python-multipart's limit (RFC 2046 asks for 70 at most; longer is read)


@pytest.mark.parametrize("length", [70, MAX_BOUNDARY, MAX_BOUNDARY + 1, 5000])
def test_a_multipart_boundary_too_long_is_a_400(fuzz_client: httpx.Client, length: int) -> None:
    boundary = "b" * length
    png = png_bytes(digit_like(3))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = fuzz_client.post(
        "/classify",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    if length <= MAX_BOUNDARY:  # within the parser's limit: a valid request
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400 and "malformed multipart body" in response.text
    refused(fuzz_client, response, native_shape)


def test_pixels_out_of_range_name_the_input(fuzz_client: httpx.Client) -> None:
    for value in ("Infinity", "1e400", "1e20", "-1e20", "256", "-1", "true", '"7"'):
        response = post_json(fuzz_client, INFER, _set_pixel(valid_infer("pixels"), value))
        refused(fuzz_client, response)
        assert response.status_code in (400, 422), (value, response.status_code)
        assert "pixels" in response.json()["error"], response.text


def test_strict_types_name_the_parameter(fuzz_client: httpx.Client) -> None:
    body = valid_infer("images") | {"parameters": {"binary_data_output": "true"}}
    response = post_json(fuzz_client, INFER, body)
    refused(fuzz_client, response)
    assert "binary_data_output" in response.json()["error"]
    arrays = np.zeros((1, 28, 28), np.uint8).tolist()
    native = post_json(fuzz_client, "/classify", {"instances": [[["1"] * 28] * 28]})
    refused(fuzz_client, native, native_shape)
    assert post_json(fuzz_client, "/classify", {"instances": arrays}).status_code == 200
