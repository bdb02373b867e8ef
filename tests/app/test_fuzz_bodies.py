"""Bodies nobody would send on purpose, against the real server: never a 5xx, always healthy.

schemathesis (test_fuzz_api.py) varies what the OpenAPI document describes; these vary what it
cannot: JSON of any shape and depth, random bytes under every accepted content type, and valid
image files cut at every length bucket. After each request the server must still be healthy.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.conftest import wait_ready
from tests.app.corrupt import FORMATS, encoded, sample

ENDPOINTS = ("/classify", "/embed", "/reconstruct")
CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/x-anything",
    "application/json",
    "application/vnd.api+json",
    "multipart/form-data; boundary=fuzz",
    "multipart/form-data",
)
BUCKETS = 16  # truncation lengths: 16 buckets of each file's length, 3 cuts in each
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same bodies in every CI run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def fuzz_client(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60)
    wait_ready(client)
    return client


def assert_handled(client: httpx.Client, response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"type", "message"}
    assert client.get("/healthz").status_code == 200


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=200,
)
bodies = st.one_of(
    json_values,
    st.builds(lambda v: {"instances": v}, json_values),
    st.builds(lambda v: {"instances": [v]}, json_values),
    st.builds(lambda v: {"instances": [{"b64": v}]}, json_values),
)


@FUZZ
@given(body=bodies, endpoint=st.sampled_from(ENDPOINTS))
def test_json_of_any_shape(fuzz_client: httpx.Client, body: object, endpoint: str) -> None:
    response = fuzz_client.post(
        endpoint, content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert_handled(fuzz_client, response)


@FUZZ
@given(
    depth=st.integers(1, 200_000),
    opener=st.sampled_from([b"[", b'{"a":', b'{"instances":[']),
    closed=st.booleans(),
)
def test_json_of_any_depth(
    fuzz_client: httpx.Client, depth: int, opener: bytes, closed: bool
) -> None:
    closer = {b"[": b"]", b'{"a":': b"}", b'{"instances":[': b"]}"}[opener]
    body = opener * depth + (b"0" + closer * depth if closed else b"")
    response = fuzz_client.post(
        "/classify", content=body, headers={"content-type": "application/json"}
    )
    assert_handled(fuzz_client, response)
    assert response.status_code in (400, 413, 422)


@FUZZ
@given(
    data=st.binary(max_size=4096),
    content_type=st.sampled_from(CONTENT_TYPES),
    endpoint=st.sampled_from(ENDPOINTS),
)
def test_random_bytes_under_every_content_type(
    fuzz_client: httpx.Client, data: bytes, content_type: str, endpoint: str
) -> None:
    response = fuzz_client.post(endpoint, content=data, headers={"content-type": content_type})
    assert_handled(fuzz_client, response)


@FUZZ
@given(data=st.binary(max_size=2048), filename=st.text(max_size=20))
def test_random_bytes_as_a_multipart_file(
    fuzz_client: httpx.Client, data: bytes, filename: str
) -> None:
    response = fuzz_client.post("/classify", files={"file": (filename or "x", data, "image/png")})
    assert_handled(fuzz_client, response)
    if data:  # random bytes are no image
        assert response.status_code == 422


def cuts(length: int) -> list[int]:
    """Three cut points in each of BUCKETS equal buckets of [1, length)."""
    points = set()
    for bucket in range(BUCKETS):
        start = 1 + (length - 1) * bucket // BUCKETS
        end = 1 + (length - 1) * (bucket + 1) // BUCKETS
        points |= {start, (start + end) // 2, max(start, end - 1)}
    return sorted(points)


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_images_cut_at_every_length_bucket(fuzz_client: httpx.Client, fmt: str) -> None:
    image = sample(28, 28)
    data = encoded(image, fmt)
    complete = fuzz_client.post("/embed", content=data, headers={"content-type": "image/png"})
    assert complete.status_code == 200
    for length in cuts(len(data)):
        response = fuzz_client.post(
            "/embed", content=data[:length], headers={"content-type": "image/png"}
        )
        assert_handled(fuzz_client, response)
        # A cut file is refused, unless every pixel survived the cut (a PNG without its IEND).
        if response.status_code == 200:
            assert response.json() == complete.json(), (fmt, length)
        else:
            assert response.status_code == 422, (fmt, length, response.text)


PROTOCOL_PATHS = ("/v2/models/mnist/infer", "/v1/models/mnist:predict", "/v1/models/mnist:classify")


@FUZZ
@given(body=bodies, path=st.sampled_from(PROTOCOL_PATHS))
def test_protocol_routes_take_json_of_any_shape(
    fuzz_client: httpx.Client, body: object, path: str
) -> None:
    response = fuzz_client.post(path, content=json.dumps(body))
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)  # the protocols' own error shape
    assert fuzz_client.get("/healthz").status_code == 200


@FUZZ
@given(
    data=st.binary(max_size=2048),
    header=st.one_of(st.none(), st.integers(-5, 4096).map(str), st.text(max_size=5)),
)
def test_v2_binary_bodies(fuzz_client: httpx.Client, data: bytes, header: str | None) -> None:
    headers = {} if header is None else {"inference-header-content-length": header}
    try:
        response = fuzz_client.post("/v2/models/mnist/infer", content=data, headers=headers)
    except (httpx.LocalProtocolError, UnicodeEncodeError):  # a header httpx refuses to send
        return
    assert response.status_code < 500, response.text[:500]
    assert fuzz_client.get("/healthz").status_code == 200
