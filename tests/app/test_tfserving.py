"""TensorFlow Serving's REST API, exercised the way its documentation does (curl -d, no JSON
content type), with the documented response shapes and the native endpoints' answers."""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import numpy as np
import pytest

from tests.app.conftest import digit_like, png_bytes

IMAGES = [digit_like(i) for i in (2, 5)]
B64 = [{"b64": base64.b64encode(png_bytes(image)).decode()} for image in IMAGES]


def curl(base_url: str, path: str, body: dict | None = None) -> dict:
    """As TF Serving's docs do it: curl -d '<json>' -X POST http://host:port/v1/models/..."""
    command = ["curl", "-s", f"{base_url}{path}"]
    if body is not None:
        command[2:2] = ["-d", json.dumps(body), "-X", "POST"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(output.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def native(base_url: str) -> dict[str, np.ndarray]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        body = {"instances": B64}
        classified = client.post("/classify?model=mnist", json=body).json()["predictions"]
        return {
            "probabilities": np.array([p["probabilities"] for p in classified]),
            "embedding": np.array(
                client.post("/embed?model=mnist", json=body).json()["embeddings"]
            ),
        }


def test_model_status(client: httpx.Client, base_url: str) -> None:
    assert curl(base_url, "/v1/models/mnist") == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert (
        curl(base_url, "/v1/models/mnist/versions/1")["model_version_status"][0]["version"] == "1"
    )
    missing = client.get("/v1/models/mnist/versions/3")
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)


def test_metadata_lists_the_signatures(base_url: str) -> None:
    body = curl(base_url, "/v1/models/mnist/metadata")
    assert body["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "classify", "embed", "reconstruct"}
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["images"]["dtype"] == "DT_STRING"
    assert default["inputs"]["pixels"]["dtype"] == "DT_UINT8"
    dims = [d["size"] for d in default["outputs"]["probabilities"]["tensor_shape"]["dim"]]
    assert dims == ["-1", "10"]


def test_predict_row_format(base_url: str, native: dict) -> None:
    body = curl(base_url, "/v1/models/mnist:predict", {"instances": B64})
    np.testing.assert_allclose(body["predictions"], native["probabilities"], atol=1e-6)
    arrays = curl(base_url, "/v1/models/mnist:predict", {"instances": [i.tolist() for i in IMAGES]})
    np.testing.assert_allclose(arrays["predictions"], native["probabilities"], atol=1e-6)
    named = curl(
        base_url,
        "/v1/models/mnist/versions/1:predict",
        {"signature_name": "embed", "instances": [{"images": b} for b in B64]},
    )
    np.testing.assert_allclose(named["predictions"], native["embedding"], atol=1e-6)
    rebuilt = curl(
        base_url, "/v1/models/mnist:predict", {"signature_name": "reconstruct", "instances": B64}
    )
    assert set(rebuilt["predictions"][0]) == {"reconstruction", "reconstruction_error"}
    assert np.asarray(rebuilt["predictions"][1]["reconstruction"]).shape == (28, 28)


def test_predict_columnar_format(base_url: str, native: dict) -> None:
    body = curl(base_url, "/v1/models/mnist:predict", {"inputs": {"images": B64}})
    np.testing.assert_allclose(body["outputs"], native["probabilities"], atol=1e-6)
    rebuilt = curl(
        base_url, "/v1/models/mnist:predict", {"signature_name": "reconstruct", "inputs": B64}
    )
    assert np.asarray(rebuilt["outputs"]["reconstruction"]).shape == (2, 28, 28)
    assert len(rebuilt["outputs"]["reconstruction_error"]) == 2


def test_classify_api(base_url: str, native: dict) -> None:
    body = curl(base_url, "/v1/models/mnist:classify", {"examples": [{"images": b} for b in B64]})
    assert len(body["results"]) == 2
    for result, probabilities in zip(body["results"], native["probabilities"], strict=True):
        assert [label for label, _ in result] == [str(d) for d in range(10)]
        np.testing.assert_allclose([score for _, score in result], probabilities, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"instances": B64, "inputs": B64}, 400),
        ({"signature_name": "nope", "instances": B64}, 400),
        ({"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}, 422),
        ({"instances": [[[0] * 28] * 27]}, 422),
        ({"inputs": {"somethingelse": B64}}, 400),
        ({}, 400),
    ],
)
def test_bad_predict_requests(client: httpx.Client, body: dict, status: int) -> None:
    response = client.post("/v1/models/mnist:predict", content=json.dumps(body))
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert client.post("/v1/models/mnist:predict", content=b"{not json").status_code == 400
    assert client.post("/v1/models/nope:predict", content=json.dumps(body)).status_code == 404
