"""The Open Inference Protocol (V2) through clients nobody here wrote: tritonclient (sync,
async) and the KServe SDK's REST client; results equal the native endpoints'."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException

from tests.app.conftest import digit_like, png_bytes, wait_ready

IMAGES = np.stack([digit_like(i) for i in (1, 4, 7)])
PNGS = np.array([png_bytes(image) for image in IMAGES], dtype=object)


@pytest.fixture(scope="module")
def triton_client(base_url: str) -> triton.InferenceServerClient:
    wait_ready(httpx.Client(base_url=base_url))
    return triton.InferenceServerClient(urlparse(base_url).netloc)


@pytest.fixture(scope="module")
def native(base_url: str) -> dict[str, np.ndarray]:
    """What the native endpoints answer for IMAGES (the tiny mnist model)."""
    form = {"files": [("file", (f"{i}.png", bytes(p), "image/png")) for i, p in enumerate(PNGS)]}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        wait_ready(client)
        embedded = client.post("/embed?model=mnist", **form).json()["embeddings"]
        classified = client.post("/classify?model=mnist&top_k=3", **form).json()["predictions"]
        rebuilt = client.post("/reconstruct?model=mnist", **form).json()["reconstructions"]
    return {
        "embedding": np.array(embedded, np.float32),
        "probabilities": np.array([p["probabilities"] for p in classified], np.float32),
        "label": np.array([p["label"] for p in classified]),
        "top": [[(t["label"], t["class_name"]) for t in p["top_k"]] for p in classified],
        "reconstruction_error": np.array([r["error"] for r in rebuilt], np.float32),
    }


def bytes_input(binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("images", [len(PNGS)], "BYTES")
    if binary:
        tensor.set_data_from_numpy(PNGS)
    else:  # JSON: a string element cannot hold a PNG's bytes, so base64 (the docs say so)
        tensor.set_data_from_numpy(
            np.array([base64.b64encode(p) for p in PNGS], dtype=object), binary_data=False
        )
    return tensor


def test_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready("mnist")
    assert triton_client.is_model_ready("mnist", model_version="1")
    assert not triton_client.is_model_ready("mnist", model_version="7")
    server = triton_client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    meta = triton_client.get_model_metadata("mnist")
    assert meta["versions"] == ["1"]
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]}
    assert inputs == {"images": ("BYTES", [-1]), "pixels": ("UINT8", [-1, 28, 28])}
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    assert outputs["probabilities"] == ("FP32", [-1, 10])
    assert outputs["label"] == ("INT64", [-1])


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary in", "json in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary out", "json out"])
def test_bytes_inputs_give_the_native_answers(
    triton_client: triton.InferenceServerClient, native: dict, binary_in: bool, binary_out: bool
) -> None:
    names = ("embedding", "probabilities", "label", "reconstruction_error")
    outputs = [triton.InferRequestedOutput(n, binary_data=binary_out) for n in names]
    result = triton_client.infer("mnist", [bytes_input(binary_in)], outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("embedding"), native["embedding"], atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("probabilities"), native["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), native["label"])
    np.testing.assert_allclose(
        result.as_numpy("reconstruction_error"), native["reconstruction_error"], rtol=1e-4
    )
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == ("mnist", "1")


def test_every_output_by_default_in_binary(
    triton_client: triton.InferenceServerClient, native: dict
) -> None:
    result = triton_client.infer("mnist", [bytes_input()], request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    assert result.as_numpy("reconstruction").shape == (3, 28, 28)
    np.testing.assert_allclose(result.as_numpy("embedding"), native["embedding"], atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_pixel_inputs(triton_client: triton.InferenceServerClient, binary: bool) -> None:
    pixels = triton.InferInput("pixels", [3, 28, 28, 1], "UINT8")
    pixels.set_data_from_numpy(IMAGES[..., None], binary_data=binary)
    result = triton_client.infer(
        "mnist", [pixels], outputs=[triton.InferRequestedOutput("label")], model_version="1"
    )
    direct = triton_client.infer(
        "mnist", [bytes_input()], outputs=[triton.InferRequestedOutput("label")]
    )
    np.testing.assert_array_equal(result.as_numpy("label"), direct.as_numpy("label"))


def test_class_count_gives_score_index_label(
    triton_client: triton.InferenceServerClient, native: dict
) -> None:
    output = triton.InferRequestedOutput("probabilities", class_count=3)
    rows = triton_client.infer("mnist", [bytes_input()], outputs=[output]).as_numpy("probabilities")
    assert rows.shape == (3, 3)
    for row, top in zip(rows, native["top"], strict=True):
        parsed = [entry.decode().split(":") for entry in row]
        assert [(int(i), name) for _, i, name in parsed] == top
        scores = [float(score) for score, _, _ in parsed]
        assert scores == sorted(scores, reverse=True)


def test_async_infer(base_url: str, native: dict) -> None:
    async def scenario() -> np.ndarray:
        client = triton_aio.InferenceServerClient(urlparse(base_url).netloc)
        try:
            result = await client.infer("mnist", [bytes_input()])
            return result.as_numpy("probabilities")  # type: ignore[no-any-return]
        finally:
            await client.close()

    np.testing.assert_allclose(asyncio.run(scenario()), native["probabilities"], atol=1e-6)
    sync = triton.InferenceServerClient(urlparse(base_url).netloc)
    pending = sync.async_infer("mnist", [bytes_input()])
    np.testing.assert_allclose(
        pending.get_result().as_numpy("probabilities"), native["probabilities"], atol=1e-6
    )


KSERVE_CLIENT = """
import asyncio, base64, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

base_url, pngs = sys.argv[1], [base64.b64decode(p) for p in json.loads(sys.argv[2])]
PNGS = np.array(pngs, dtype=object)


async def infer(binary):
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        assert await client.is_server_live(base_url)
        assert await client.is_model_ready(base_url, "mnist")
        tensor = InferInput("images", [3], "BYTES")
        data = PNGS if binary else np.array([base64.b64encode(p) for p in PNGS], dtype=object)
        tensor.set_data_from_numpy(data, binary_data=binary)
        request = InferRequest(model_name="mnist", infer_inputs=[tensor], request_id="k-1")
        response = await client.infer(base_url, request, model_name="mnist")
        return response.get_output_by_name("label").as_numpy().tolist()
    finally:
        await client.close()


print(json.dumps([asyncio.run(infer(binary=True)), asyncio.run(infer(binary=False))]))
"""


def test_the_kserve_sdk_rest_client(base_url: str, native: dict) -> None:
    """In a process of its own: KServe's SDK and tritonclient.grpc (tests/app/test_grpc.py)
    both define the protocol's messages in protobuf's default pool, so one process cannot
    import both."""
    pngs = json.dumps([base64.b64encode(p).decode() for p in PNGS])
    result = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, base_url, pngs],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    binary, in_json = json.loads(result.stdout.strip().splitlines()[-1])
    assert binary == in_json == native["label"].tolist()


def tensor(name: str, shape: list[int], datatype: str, data: list, **extra: object) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}


ZEROS = tensor("pixels", [1, 28, 28], "UINT8", [0] * 784)
NOT_A_PNG = base64.b64encode(b"no").decode()
BAD = [
    ("wrong datatype", {"inputs": [tensor("images", [1], "FP32", [1.0])]}, None, 400),
    ("wrong shape", {"inputs": [tensor("pixels", [1, 27, 28], "UINT8", [0] * 756)]}, None, 400),
    ("not an image", {"inputs": [tensor("images", [1], "BYTES", [NOT_A_PNG])]}, None, 422),
    ("not base64", {"inputs": [tensor("images", [1], "BYTES", ["%%%"])]}, None, 400),
    ("unknown output", {"inputs": [ZEROS], "outputs": [{"name": "scores"}]}, None, 400),
    ("no inputs", {"inputs": []}, None, 400),
    ("two inputs", {"inputs": [ZEROS, ZEROS]}, None, 400),
    ("header longer than the body", {"inputs": []}, "100000", 400),
    ("header not a number", {"inputs": []}, "abc", 400),
    (
        "classification of the embedding",
        {
            "inputs": [ZEROS],
            "outputs": [{"name": "embedding", "parameters": {"classification": 2}}],
        },
        None,
        400,
    ),
]


@pytest.mark.parametrize(("name", "body", "header", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_in_the_protocols_error_format(
    client: httpx.Client, name: str, body: dict, header: str | None, status: int
) -> None:
    headers = {"inference-header-content-length": header} if header else {}
    response = client.post("/v2/models/mnist/infer", content=json.dumps(body), headers=headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and isinstance(response.json()["error"], str)
    assert client.get("/healthz").status_code == 200


def test_binary_sizes_that_do_not_add_up(client: httpx.Client) -> None:
    blob = (4).to_bytes(4, "little") + b"\x89PNG"
    tensor = {"name": "images", "shape": [1], "datatype": "BYTES"}
    for declared, sent in ((len(blob) + 5, blob), (len(blob), blob + b"extra")):
        header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": declared}}]})
        response = client.post(
            "/v2/models/mnist/infer",
            content=header.encode() + sent,
            headers={"inference-header-content-length": str(len(header))},
        )
        assert response.status_code == 400, response.text
    cut = json.dumps({"inputs": [{**tensor, "data": ["AAAA"]}]})
    mismatched = client.post(
        "/v2/models/mnist/infer",
        content=cut,
        headers={"inference-header-content-length": str(len(cut) - 3)},
    )
    assert mismatched.status_code == 400


def test_unknown_model_and_version(
    triton_client: triton.InferenceServerClient, client: httpx.Client
) -> None:
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton_client.infer("nope", [bytes_input()])
    response = client.post("/v2/models/mnist/versions/9/infer", json={"inputs": []})
    assert response.status_code == 404 and "served" in response.json()["error"]


def test_the_v2_routes_are_documented(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v2/models/{name}/infer", "/v2/health/ready", "/v1/models/{name}:predict"} <= set(
        paths
    )
