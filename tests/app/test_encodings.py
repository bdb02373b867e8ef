"""Compact embeddings (`encoding`, `dimensions`) on /embed, /similar, V2 over REST and gRPC,
and the client: each encoding means what the docs say, computed from the version's own part."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from app.contract.embedding import (
    EmbeddingSpace,
    decode,
    embedding_values,
    encode,
    fit_space,
)
from app.contract.errors import BadRequest, InvalidEmbedding
from app.contract.repository import read_manifest
from app.main import create_app
from app.protocols.oip.proto import inference_pb2 as pb
from app.protocols.oip.proto.inference_pb2_grpc import GRPCInferenceServiceStub
from app.settings import Settings
from latentserve import Client
from tests.app.conftest import png_bytes, serve, wait_ready, without_part
from tests.conftest import free_port, tiny_dataset

IMAGES = tiny_dataset("mnist").x_train[:5]


def multipart(images: np.ndarray) -> dict[str, object]:
    return {
        "files": [("file", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images)]
    }


@pytest.fixture(scope="module")
def space(model_repo: Path) -> EmbeddingSpace:
    version = model_repo / "mnist" / "1"
    manifest = read_manifest(version)
    assert manifest.embedding is not None  # every export writes the part
    return EmbeddingSpace.load(version, manifest.embedding)


@pytest.fixture(scope="module")
def latents(base_url: str) -> np.ndarray:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        wait_ready(client)
        answer = client.post("/embed?model=mnist", **multipart(IMAGES))
    return np.array(answer.json()["embeddings"], np.float32)


# -- the contract ------------------------------------------------------------------------------


def test_the_fitted_axes_are_ordered_and_orthonormal() -> None:
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(500, 12)) * np.linspace(5, 0.1, 12)  # spread falling per axis
    spec, arrays = fit_space(latents, "test", max_dimensions=8)
    components = arrays["components"]
    np.testing.assert_allclose(components.T @ components, np.eye(8), atol=1e-5)
    assert np.all(np.diff(arrays["component_std"]) <= 0)
    explained = [spec.explained_variance[k] for k in ("8",)]
    assert 0.9 < explained[0] <= 1.0
    assert np.argmax(np.abs(components[:, 0])) == 0  # the widest axis first


def test_encode_and_decode_round_trip(space: EmbeddingSpace, latents: np.ndarray) -> None:
    dim = latents.shape[1]
    int8 = encode(latents, space, "int8")
    assert int8.values.dtype == np.int8 and int8.scale == space.spec.int8_scale
    unclipped = np.abs(latents) < 127 * int8.scale
    error = np.abs(int8.values * int8.scale - latents)[unclipped]
    assert error.max() <= int8.scale / 2 + 1e-6
    binary = encode(latents, space, "binary")
    assert binary.values.shape == (len(latents), (dim + 7) // 8) and binary.dimensions == dim
    bits = np.unpackbits(binary.values, axis=1, count=dim)
    np.testing.assert_array_equal(bits, (latents - space.mean > 0).astype(np.uint8))
    reduced = encode(latents, space, "float32", 4)
    np.testing.assert_allclose(
        reduced.values, (latents - space.mean) @ space.components[:, :4], atol=1e-5
    )
    rows = encode(latents, space, "base64").base64_rows()
    np.testing.assert_array_equal(embedding_values(rows, "base64"), latents)
    back = decode(embedding_values(rows, "base64"), space, "base64", None, dim)
    np.testing.assert_array_equal(back, latents)
    assert decode(int8.values.astype(float), space, "int8", None, dim).shape == latents.shape
    assert decode(binary.values.astype(float), space, "binary", None, dim).shape == latents.shape


def test_what_cannot_be_done_is_refused(space: EmbeddingSpace, latents: np.ndarray) -> None:
    with pytest.raises(BadRequest, match="embedding calibration"):
        encode(latents, None, "int8")
    with pytest.raises(BadRequest, match="at most"):
        encode(latents, space, "float32", space.spec.max_dimensions + 1)
    with pytest.raises(InvalidEmbedding, match="whole numbers"):
        embedding_values([[0.5, 1.0]], "int8")
    with pytest.raises(InvalidEmbedding, match="embeddings\\[1\\] has 1 values"):
        embedding_values([[1.0, 2.0], [1.0]], "float32")
    with pytest.raises(InvalidEmbedding, match="not base64"):
        embedding_values(["***"], "float32")
    nan = base64.b64encode(np.array([np.nan], "<f4").tobytes()).decode()
    with pytest.raises(InvalidEmbedding, match="not finite"):
        embedding_values([nan], "float32")


# -- /embed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["json", "npy"])
def test_embed_in_every_encoding(
    client: httpx.Client, space: EmbeddingSpace, latents: np.ndarray, accept: str
) -> None:
    headers = {"accept": "application/x-npy"} if accept == "npy" else {}

    def ask(query: str) -> tuple[np.ndarray | list, httpx.Response]:
        response = client.post(f"/embed?model=mnist&{query}", **multipart(IMAGES), headers=headers)
        assert response.status_code == 200, response.text
        if accept == "npy":
            return np.load(io.BytesIO(response.content)), response
        return response.json()["embeddings"], response

    int8, response = ask("encoding=int8")
    assert np.asarray(int8).dtype == (np.int8 if accept == "npy" else np.int64)
    np.testing.assert_array_equal(int8, encode(latents, space, "int8").values)
    assert float(response.headers["x-embedding-scale"]) == space.spec.int8_scale
    if accept == "json":
        assert response.json()["scale"] == space.spec.int8_scale
        assert response.json()["encoding"] == "int8"
    binary, _ = ask("encoding=binary")
    np.testing.assert_array_equal(binary, encode(latents, space, "binary").values)
    reduced, response = ask("dimensions=4")
    np.testing.assert_allclose(reduced, encode(latents, space, "float32", 4).values, atol=1e-6)
    if accept == "json":
        assert response.json()["dim"] == 4
    short_int8, response = ask("encoding=int8&dimensions=4")
    assert float(response.headers["x-embedding-scale"]) == space.spec.int8_scale_reduced
    np.testing.assert_array_equal(short_int8, encode(latents, space, "int8", 4).values)
    as_base64, _ = ask("encoding=base64")
    if accept == "json":
        decoded = [np.frombuffer(base64.b64decode(row), "<f4") for row in as_base64]
        np.testing.assert_array_equal(decoded, latents)
    else:
        np.testing.assert_array_equal(as_base64, latents)  # .npy is float32 already


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("encoding=float16", "encoding"),
        ("dimensions=0", "dimensions"),
        ("dimensions=100000", "at most"),
        ("encoding=int8&normalize=true", "normalize applies to float32 and base64"),
    ],
)
def test_embed_refuses_what_it_cannot_do(client: httpx.Client, query: str, needle: str) -> None:
    response = client.post(f"/embed?model=mnist&{query}", **multipart(IMAGES[:1]))
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_a_version_without_the_part_answers_float32_and_says_why_not_more(
    model_repo: Path, repo: Path
) -> None:
    model_dir = repo / "mnist"
    without_part(model_repo / "mnist" / "1", model_dir, 2, "embedding")
    settings = Settings(model_repository=repo, version_policy="all")  # type: ignore[arg-type]
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
        wait_ready(http)
        plain = http.post("/embed?model=mnist&version=2", **multipart(IMAGES[:1]))
        assert plain.status_code == 200
        refused = http.post("/embed?model=mnist&version=2&encoding=int8", **multipart(IMAGES[:1]))
        assert refused.status_code == 400
        assert "embedding calibration" in refused.json()["error"]["message"]


# -- /similar ----------------------------------------------------------------------------------


def test_similar_takes_a_query_in_any_encoding(
    client: httpx.Client, space: EmbeddingSpace, latents: np.ndarray
) -> None:
    by_image = client.post("/similar?model=mnist&k=3", **multipart(IMAGES)).json()["neighbours"]
    exact = encode(latents, space, "base64").base64_rows()
    answer = client.post("/similar?model=mnist&k=3", json={"embeddings": exact})
    assert answer.status_code == 200, answer.text
    assert answer.json()["neighbours"] == by_image  # float32 bytes: the same query exactly

    def first_ids(query: str, rows: list) -> list[str]:
        response = client.post(f"/similar?model=mnist&k=3&{query}", json={"embeddings": rows})
        assert response.status_code == 200, response.text
        return [row[0]["id"] for row in response.json()["neighbours"]]

    expected = [row[0]["id"] for row in by_image]  # each training image finds itself first
    assert first_ids("encoding=int8", encode(latents, space, "int8").values.tolist()) == expected
    int8_rows = encode(latents, space, "int8").base64_rows()
    assert first_ids("encoding=int8", int8_rows) == expected
    reduced = encode(latents, space, "float32", space.spec.max_dimensions).values.tolist()
    assert first_ids(f"dimensions={space.spec.max_dimensions}", reduced) == expected
    codes = encode(latents, space, "binary").values.tolist()
    assert len(first_ids("encoding=binary", codes)) == len(IMAGES)  # an answer; rank approximate
    wrong = client.post("/similar?model=mnist&encoding=binary", json={"embeddings": [[1, 2]]})
    assert wrong.status_code == 422 and "packed 8 per byte" in wrong.json()["error"]["message"]


# -- V2 over REST and gRPC ---------------------------------------------------------------------


def v2_body(**parameters: object) -> dict:
    return {
        "inputs": [
            {
                "name": "pixels",
                "shape": [5, 28, 28],
                "datatype": "UINT8",
                "data": IMAGES.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "embedding", "parameters": parameters}],
    }


def test_v2_rest_embedding_parameters(
    client: httpx.Client, space: EmbeddingSpace, latents: np.ndarray
) -> None:
    body = client.post("/v2/models/mnist/infer", json=v2_body(encoding="int8")).json()
    (tensor,) = body["outputs"]
    assert tensor["datatype"] == "INT8" and tensor["parameters"]["scale"] == space.spec.int8_scale
    assert tensor["shape"] == list(latents.shape)
    np.testing.assert_array_equal(tensor["data"], encode(latents, space, "int8").values.ravel())
    (tensor,) = client.post("/v2/models/mnist/infer", json=v2_body(encoding="binary")).json()[
        "outputs"
    ]
    assert tensor["datatype"] == "UINT8" and tensor["shape"] == [5, (latents.shape[1] + 7) // 8]
    (tensor,) = client.post("/v2/models/mnist/infer", json=v2_body(dimensions=3)).json()["outputs"]
    assert tensor["datatype"] == "FP32" and tensor["shape"] == [5, 3]
    (tensor,) = client.post("/v2/models/mnist/infer", json=v2_body(encoding="base64")).json()[
        "outputs"
    ]
    assert tensor["datatype"] == "BYTES" and tensor["shape"] == [5]
    np.testing.assert_array_equal(
        np.frombuffer(base64.b64decode(tensor["data"][0]), "<f4"), latents[0]
    )
    for bad in ({"encoding": "fp16"}, {"dimensions": 0}, {"dimensions": True}):
        response = client.post("/v2/models/mnist/infer", json=v2_body(**bad))
        assert response.status_code == 400, response.text
    wrong_output = v2_body()
    wrong_output["outputs"] = [{"name": "label", "parameters": {"encoding": "int8"}}]
    response = client.post("/v2/models/mnist/infer", json=wrong_output)
    assert response.status_code == 400 and "applies to 'embedding'" in response.json()["error"]


@pytest.fixture(scope="module")
def grpc_address(model_repo: Path) -> Iterator[str]:
    port = free_port()
    settings = Settings(model_repository=model_repo, grpc_port=port)
    with serve(create_app(settings)) as url:
        wait_ready(httpx.Client(base_url=url, timeout=30))
        yield f"127.0.0.1:{port}"


def test_grpc_embedding_parameters(
    grpc_address: str, space: EmbeddingSpace, latents: np.ndarray
) -> None:
    requested = pb.ModelInferRequest.InferRequestedOutputTensor(name="embedding")
    requested.parameters["encoding"].string_param = "int8"
    requested.parameters["dimensions"].int64_param = 4
    request = pb.ModelInferRequest(
        model_name="mnist",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="pixels", datatype="UINT8", shape=[5, 28, 28]
            )
        ],
        raw_input_contents=[IMAGES.tobytes()],
        outputs=[requested],
    )
    with grpc.insecure_channel(grpc_address) as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request)
    (output,) = response.outputs
    assert output.datatype == "INT8" and list(output.shape) == [5, 4]
    assert output.parameters["scale"].double_param == space.spec.int8_scale_reduced
    values = np.frombuffer(response.raw_output_contents[0], np.int8).reshape(5, 4)
    np.testing.assert_array_equal(values, encode(latents, space, "int8", 4).values)


# -- the client --------------------------------------------------------------------------------


def test_the_client_asks_and_reads_every_encoding(
    base_url: str, space: EmbeddingSpace, latents: np.ndarray
) -> None:
    files = [png_bytes(im) for im in IMAGES]
    with Client(base_url) as client:
        int8 = client.embed(files, model="mnist", encoding="int8")
        assert int8.encoding == "int8" and int8.scale == space.spec.int8_scale
        np.testing.assert_allclose(int8.floats(), latents, atol=space.spec.int8_scale)
        binary = client.embed(files, model="mnist", encoding="binary")
        assert binary.encoding == "binary" and binary.vectors.dtype == np.uint8
        with pytest.raises(ValueError, match="sign bits"):
            binary.floats()
        short = client.embed(files, model="mnist", dimensions=4)
        assert short.vectors.shape == (5, 4) and short.encoding == "float32"
        expected = [row[0].id for row in client.similar(files, model="mnist", k=1).neighbours]
        for query in (int8.vectors, client.embed(files, model="mnist").vectors):
            found = client.similar(embeddings=query, model="mnist", k=1)
            assert [row[0].id for row in found.neighbours] == expected
        reduced = client.embed(files, model="mnist", dimensions=space.spec.max_dimensions).vectors
        found = client.similar(
            embeddings=reduced, dimensions=space.spec.max_dimensions, model="mnist", k=1
        )
        assert [row[0].id for row in found.neighbours] == expected
