"""Open Inference Protocol (V2) over gRPC through a client nobody here wrote,
tritonclient.grpc (sync and asyncio), against a real service: answers equal the native
endpoints', errors carry the right status codes and leave the server healthy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from app.main import create_app
from app.protocols.oip.proto import inference_pb2 as pb
from app.protocols.oip.proto.inference_pb2_grpc import GRPCInferenceServiceStub
from app.settings import Settings
from tests.app.conftest import digit_like, png_bytes, serve, wait_ready
from tests.conftest import free_port

IMAGES = np.stack([digit_like(i) for i in (1, 4, 7)])
PNGS = np.array([png_bytes(image) for image in IMAGES], dtype=object)
KEY = "grpc-test-key"
MAX_BODY = 256 * 1024


def service(model_repo: Path, **overrides: object) -> tuple[Settings, int]:
    port = free_port()
    settings = Settings(
        model_repository=model_repo,
        default_model="mnist",
        max_images=8,
        max_body_bytes=MAX_BODY,
        grpc_port=port,
        **overrides,  # type: ignore[arg-type]
    )
    return settings, port


@pytest.fixture(scope="module")
def served(model_repo: Path) -> Iterator[tuple[str, str]]:
    """(HTTP base URL, gRPC address) of one service."""
    settings, port = service(model_repo)
    with serve(create_app(settings)) as url:
        wait_ready(httpx.Client(base_url=url, timeout=30))
        yield url, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(served: tuple[str, str]) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(served[1])


@pytest.fixture(scope="module")
def native(served: tuple[str, str]) -> dict[str, np.ndarray]:
    form = {"files": [("file", (f"{i}.png", bytes(p), "image/png")) for i, p in enumerate(PNGS)]}
    with httpx.Client(base_url=served[0], timeout=30) as http:
        embedded = http.post("/embed?model=mnist", **form).json()["embeddings"]
        classified = http.post("/classify?model=mnist&top_k=3", **form).json()["predictions"]
    return {
        "embedding": np.array(embedded, np.float32),
        "probabilities": np.array([p["probabilities"] for p in classified], np.float32),
        "label": np.array([p["label"] for p in classified]),
        "top": [[(t["label"], t["class_name"]) for t in p["top_k"]] for p in classified],
    }


def pngs_input(pngs: np.ndarray = PNGS) -> triton.InferInput:
    tensor = triton.InferInput("images", [len(pngs)], "BYTES")
    tensor.set_data_from_numpy(pngs)
    return tensor


def test_live_ready_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist") and client.is_model_ready("mnist", "1")
    assert client.get_server_metadata().name == "latentserve"
    meta = client.get_model_metadata("mnist", as_json=True)
    assert meta["versions"] == ["1"]
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]}
    assert inputs == {"images": ("BYTES", ["-1"]), "pixels": ("UINT8", ["-1", "28", "28"])}
    outputs = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert outputs["embedding"] == "FP32" and outputs["label"] == "INT64"


def test_png_bytes_give_the_native_answers(
    client: triton.InferenceServerClient, native: dict
) -> None:
    result = client.infer("mnist", [pngs_input()], request_id="g-1")
    np.testing.assert_allclose(result.as_numpy("embedding"), native["embedding"], atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("probabilities"), native["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), native["label"])
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("mnist", "1", "g-1")


def test_uint8_pixels_give_the_same_classes(
    client: triton.InferenceServerClient, native: dict
) -> None:
    pixels = triton.InferInput("pixels", [3, 28, 28], "UINT8")
    pixels.set_data_from_numpy(IMAGES)
    result = client.infer(
        "mnist", [pixels], outputs=[triton.InferRequestedOutput("label")], model_version="1"
    )
    np.testing.assert_array_equal(result.as_numpy("label"), native["label"])


def test_class_count(client: triton.InferenceServerClient, native: dict) -> None:
    output = triton.InferRequestedOutput("probabilities", class_count=3)
    rows = client.infer("mnist", [pngs_input()], outputs=[output]).as_numpy("probabilities")
    for row, top in zip(rows, native["top"], strict=True):
        assert [(int(e.decode().split(":")[1]), e.decode().split(":")[2]) for e in row] == top


def test_asyncio_client(served: tuple[str, str], native: dict) -> None:
    async def scenario() -> list[np.ndarray]:
        async with triton_aio.InferenceServerClient(served[1]) as aclient:
            calls = [aclient.infer("mnist", [pngs_input()]) for _ in range(8)]
            return [r.as_numpy("label") for r in await asyncio.gather(*calls)]

    for labels in asyncio.run(scenario()):
        np.testing.assert_array_equal(labels, native["label"])


def test_typed_contents_as_well_as_raw(served: tuple[str, str], native: dict) -> None:
    """Clients that fill typed `contents` (bytes_contents, uint_contents) instead of raw ones."""
    with grpc.insecure_channel(served[1]) as channel:
        stub = GRPCInferenceServiceStub(channel)
        for tensor in (
            pb.ModelInferRequest.InferInputTensor(
                name="images",
                datatype="BYTES",
                shape=[3],
                contents=pb.InferTensorContents(bytes_contents=list(PNGS)),
            ),
            pb.ModelInferRequest.InferInputTensor(
                name="pixels",
                datatype="UINT8",
                shape=[3, 28, 28],
                contents=pb.InferTensorContents(uint_contents=IMAGES.ravel().tolist()),
            ),
        ):
            request = pb.ModelInferRequest(
                model_name="mnist",
                inputs=[tensor],
                outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="label")],
            )
            response, call = stub.ModelInfer.with_call(request)
            labels = np.frombuffer(response.raw_output_contents[0], "<i8")
            np.testing.assert_array_equal(labels, native["label"])
            trailing = dict(call.trailing_metadata())
            assert trailing["x-model-name"] == "mnist" and int(trailing["x-batch-images"]) >= 1


def _status(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code(), caught.value.details()


def _infer(stub: GRPCInferenceServiceStub, **fields: object) -> object:
    return lambda: stub.ModelInfer(pb.ModelInferRequest(**fields))  # type: ignore[arg-type]


def _pixels(shape: list[int], datatype: str = "UINT8") -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name="pixels", datatype=datatype, shape=shape)


BAD = {
    "no input": ({}, grpc.StatusCode.INVALID_ARGUMENT, "no input"),
    "wrong datatype": (
        {"inputs": [_pixels([1, 28, 28], "FP32")], "raw_input_contents": [bytes(784 * 4)]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected 'images' BYTES",
    ),
    "shape and data disagree": (
        {"inputs": [_pixels([2, 28, 28])], "raw_input_contents": [bytes(784)]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "784 values for shape [2, 28, 28]",
    ),
    "raw contents for no input": (
        {"inputs": [_pixels([1, 28, 28])], "raw_input_contents": [bytes(784), b"x"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents holds 2 tensors for 1 inputs",
    ),
    "no data": (
        {"inputs": [_pixels([1, 28, 28])]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "neither data nor binary_data_size",
    ),
    "uint8 over 255": (
        {
            "inputs": [
                pb.ModelInferRequest.InferInputTensor(
                    name="pixels",
                    datatype="UINT8",
                    shape=[1, 28, 28],
                    contents=pb.InferTensorContents(uint_contents=[256] * 784),
                )
            ]
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        "whole numbers 0-255",
    ),
    "a PNG that is not one": (
        {
            "inputs": [
                pb.ModelInferRequest.InferInputTensor(name="images", datatype="BYTES", shape=[1])
            ],
            "raw_input_contents": [b"\x05\x00\x00\x00hello"],
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        "",
    ),
    "too many images": (
        {"inputs": [_pixels([9, 28, 28])], "raw_input_contents": [bytes(9 * 784)]},
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the limit is 8",
    ),
    "unknown output": (
        {
            "inputs": [_pixels([1, 28, 28])],
            "raw_input_contents": [bytes(784)],
            "outputs": [pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")],
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown output 'nope'",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_their_status_and_leave_the_server_healthy(
    served: tuple[str, str], client: triton.InferenceServerClient, native: dict, case: str
) -> None:
    fields, code, message = BAD[case]
    with grpc.insecure_channel(served[1]) as channel:
        stub = GRPCInferenceServiceStub(channel)
        got, details = _status(_infer(stub, model_name="mnist", **fields))
    assert got == code, details
    assert message in details
    result = client.infer("mnist", [pngs_input()], outputs=[triton.InferRequestedOutput("label")])
    np.testing.assert_array_equal(result.as_numpy("label"), native["label"])


@pytest.mark.parametrize(
    ("model", "version", "needle"),
    [
        ("nope", "", "unknown model 'nope'"),
        ("mnist", "7", "no served version 7"),
        ("mnist", "x", "not a version number"),
    ],
)
def test_unknown_models_and_versions(
    client: triton.InferenceServerClient, model: str, version: str, needle: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, [pngs_input()], model_version=version)
    expected = "StatusCode.INVALID_ARGUMENT" if version == "x" else "StatusCode.NOT_FOUND"
    assert caught.value.status() == expected
    assert needle in caught.value.message()
    with pytest.raises(InferenceServerException):
        client.get_model_metadata(model, model_version=version)


def test_oversize_message_is_resource_exhausted(
    client: triton.InferenceServerClient, native: dict
) -> None:
    big = np.array([b"\0" * (MAX_BODY + 1)], dtype=object)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist", [pngs_input(big)])
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert client.is_server_ready()


def test_calls_are_counted_and_logged(
    served: tuple[str, str], client: triton.InferenceServerClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="latentserve.access"):
        client.infer("mnist", [pngs_input()], headers={"x-request-id": "grpc-line-1"})
    line = next(r for r in caplog.records if "grpc-line-1" in r.getMessage())
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["endpoint"] == "/inference.GRPCInferenceService/ModelInfer"
    assert (fields["model"], fields["version"], fields["images"]) == ("mnist", 1, 3)
    assert fields["status"] == "OK"
    metrics = httpx.get(f"{served[0]}/metrics").text
    assert 'endpoint="/inference.GRPCInferenceService/ModelInfer",model="mnist"' in metrics


def test_api_keys_as_metadata(model_repo: Path) -> None:
    settings, port = service(model_repo, api_keys=[KEY])
    with serve(create_app(settings)) as url:
        wait_ready(httpx.Client(base_url=url, timeout=30))
        keyless = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert keyless.is_server_live() and keyless.is_server_ready()  # public, as over REST
        for call in (
            lambda: keyless.infer("mnist", [pngs_input()]),
            lambda: keyless.get_model_metadata("mnist"),
            lambda: keyless.infer("mnist", [pngs_input()], headers={"x-api-key": "wrong"}),
        ):
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
        for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}):
            result = keyless.infer("mnist", [pngs_input()], headers=headers)
            assert result.as_numpy("label").shape == (3,)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_zero_turns_grpc_off_and_a_taken_port_fails_the_start(model_repo: Path) -> None:
    settings = Settings(model_repository=model_repo, grpc_port=0)
    with serve(create_app(settings)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(model_repository=model_repo, grpc_port=port)
        with pytest.raises(RuntimeError), serve(create_app(settings)):
            pass
