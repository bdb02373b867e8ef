"""/similar: nearest reference images of query images or embeddings, over the real server."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.contract.repository import read_manifest
from app.contract.similarity import SimilarityIndex
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import png_bytes, serve, wait_ready, without_part
from tests.conftest import tiny_dataset

TRAIN = tiny_dataset("mnist").x_train  # the tiny mnist model's reference images


def multipart(*images: np.ndarray) -> dict[str, object]:
    return {
        "files": [("file", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images)]
    }


def test_a_training_image_finds_itself_first(client: httpx.Client) -> None:
    response = client.post("/similar?model=mnist&k=5", **multipart(TRAIN[7], TRAIN[42]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "mnist", "version": 1}
    assert body["metric"] == "cosine distance"
    first, second = body["neighbours"]
    assert len(first) == len(second) == 5
    assert first[0]["id"] == "train/7" and second[0]["id"] == "train/42"  # request order kept
    assert first[0]["distance"] == pytest.approx(0.0, abs=1e-2)
    distances = [n["distance"] for n in first]
    assert distances == sorted(distances)  # nearest first
    label = int(tiny_dataset("mnist").y_train[7])
    assert first[0]["label"] == label and first[0]["class_name"] == str(label)
    assert response.headers["x-model-version"] == "1"


def test_an_embedding_finds_what_its_image_finds(client: httpx.Client) -> None:
    image = TRAIN[3]
    by_image = client.post("/similar?model=mnist", **multipart(image)).json()["neighbours"]
    latent = client.post("/embed?model=mnist", **multipart(image)).json()["embeddings"]
    for body in ({"embedding": latent[0]}, {"embeddings": latent}):
        by_vector = client.post("/similar?model=mnist", json=body)
        assert by_vector.status_code == 200, by_vector.text
        assert by_vector.json()["neighbours"] == by_image
    instances = client.post("/similar?model=mnist", json={"instances": [image.tolist()]})
    assert instances.json()["neighbours"] == by_image


@pytest.mark.parametrize(
    ("query", "body", "status", "kind", "index"),
    [
        ("k=0", {"embedding": [0.0]}, 400, "bad_request", None),
        ("k=101", {"embedding": [0.0]}, 400, "bad_request", None),
        ("", {"embedding": [0.0] * 3}, 422, "invalid_embedding", 0),
        ("", {"embedding": [0.0, "x"]}, 422, "invalid_embedding", 0),
        ("", {"embeddings": [[0.0, 1.0], [0.0]]}, 422, "invalid_embedding", 1),
        ("", {"embedding": [0.0], "instances": [[[0] * 28] * 28]}, 400, "bad_request", None),
        ("", {}, 400, "bad_request", None),
        ("version=9", {"embedding": [0.0]}, 404, "version_not_found", None),
        ("model=nope", {"embedding": [0.0]}, 404, "model_not_found", None),
    ],
)
def test_bad_queries(
    client: httpx.Client, query: str, body: dict, status: int, kind: str, index: int | None
) -> None:
    response = client.post(f"/similar?{query}", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error.get("index")) == (kind, index)


def test_nan_in_an_embedding_is_a_422(client: httpx.Client) -> None:
    dim = client.get("/models/mnist").json()["latent_dim"]
    body = json.dumps({"embedding": [0.0] * (dim - 1) + [float("nan")]}).replace("NaN", "NaN")
    response = client.post(
        "/similar?model=mnist", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_embedding"
    assert "finite" in response.json()["error"]["message"]


def test_wrong_dimension_names_the_models(client: httpx.Client) -> None:
    error = client.post("/similar?model=mnist", json={"embedding": [0.5] * 5}).json()["error"]
    dim = client.get("/models/mnist").json()["latent_dim"]
    assert f"embeds in {dim}" in error["message"]


def test_a_version_without_an_index_serves_everything_else(repo: Path, settings: Settings) -> None:
    without_part(repo / "mnist" / "1", repo / "mnist", 2, "index")
    live = settings.model_copy(update={"model_repository": repo})
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        assert client.get("/models/mnist").json()["index"] is None
        assert client.post("/classify?model=mnist", **multipart(TRAIN[0])).status_code == 200
        response = client.post("/similar?model=mnist", **multipart(TRAIN[0]))
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "index_not_found"
        assert "python -m training index" in response.json()["error"]["message"]


def test_a_version_whose_index_fails_its_checksum_is_refused(
    repo: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    live = settings.model_copy(update={"model_repository": repo, "reload_interval_s": 0.1})
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        staged = repo / "mnist" / ".tmp-2"
        shutil.copytree(repo / "mnist" / "1", staged)
        manifest = json.loads((staged / "manifest.json").read_text())
        manifest["version"] = 2
        (staged / "manifest.json").write_text(json.dumps(manifest))
        reference = staged / "index" / "reference.npz"
        data = bytearray(reference.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one byte of the reference vectors changes
        reference.write_bytes(bytes(data))
        with caplog.at_level(logging.WARNING, logger="app.models.registry"):
            staged.rename(repo / "mnist" / "2")
            time.sleep(1.0)
        assert client.get("/readyz").json()["versions"]["mnist"] == [1]
        refusals = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
        assert len(refusals) == 1 and "checksum mismatch for index/reference.npz" in refusals[0]
        assert client.post("/similar?model=mnist", **multipart(TRAIN[0])).status_code == 200


def test_the_index_finds_what_exact_search_finds(model_repo: Path) -> None:
    """recall@10 of the HNSW graph against brute force over the same stored vectors."""
    path = model_repo / "mnist" / "1"
    spec = read_manifest(path).index
    assert spec is not None
    index = SimilarityIndex.load(path, spec)
    with np.load(path / spec.file) as reference:
        vectors = reference["vectors"].astype(np.float32) / 127
        mean, projection = reference["mean"], reference["projection"]
    rng = np.random.default_rng(0)
    queries = rng.random((100, len(mean)), dtype=np.float32) * mean.max()
    found = index.search(queries, 10)
    projected = (queries - mean) @ projection
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    exact = np.argsort(-(projected @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T))
    recall = np.mean(
        [
            len({int(i.split("/")[1]) for i in ids} & set(exact[row, :10].tolist())) / 10
            for row, ids in enumerate(found.ids)
        ]
    )
    assert recall >= 0.95


def test_a_null_form_is_no_form(client: httpx.Client) -> None:
    response = client.post("/similar?model=mnist", json={"instances": None})
    assert response.status_code == 400
    assert "exactly one of" in response.json()["error"]["message"]


def test_a_component_beyond_float32_is_a_422(client: httpx.Client) -> None:
    dim = client.get("/models/mnist").json()["latent_dim"]
    response = client.post("/similar?model=mnist", json={"embedding": [1e300] * dim})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_embedding"


def test_neighbours_come_with_their_images_when_the_index_stores_them(
    client: httpx.Client,
) -> None:
    query = multipart(TRAIN[7])
    with_images = client.post("/similar?model=mnist&k=3&images=true", **query).json()
    first = with_images["neighbours"][0][0]
    assert first["id"] == "train/7"
    stored = Image.open(io.BytesIO(base64.b64decode(first["image_png"])))
    assert stored.size == (28, 28) and stored.mode == "L"
    assert np.array_equal(np.asarray(stored), TRAIN[7])  # the training image itself
    assert client.get("/models/mnist").json()["index"]["images"] is True
    plain = client.post("/similar?model=mnist&k=3", **query).json()
    assert all(n["image_png"] is None for n in plain["neighbours"][0])
    # fashion-mnist's index stores no images: asked for, they are null, not an error
    fashion = client.post("/similar?model=fashion-mnist&k=3&images=true", **query)
    assert fashion.status_code == 200
    assert all(n["image_png"] is None for n in fashion.json()["neighbours"][0])
    assert client.get("/models/fashion-mnist").json()["index"]["images"] is False
