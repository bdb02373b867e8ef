"""ood_score / in_distribution on /classify, /reconstruct and V2, over the real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.contract.ood import OodScorer, rank
from app.contract.repository import read_manifest
from app.main import create_app
from app.models.versions import VersionPolicy
from app.settings import Settings
from tests.app.conftest import png_bytes, serve, wait_ready, without_part
from tests.conftest import tiny_dataset

TEST = tiny_dataset("mnist").x_test  # never used for training or calibration
NOISE = np.random.default_rng(5).integers(0, 256, (4, 28, 28), dtype=np.uint8)


def multipart(*images: np.ndarray) -> dict[str, object]:
    return {
        "files": [("file", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images)]
    }


def by_hand(version_dir: Path, latents: np.ndarray) -> np.ndarray:
    """The ood_score from the calibration part's arrays, without app.contract.ood's code."""
    spec = read_manifest(version_dir).ood
    assert spec is not None
    with np.load(version_dir / spec.file) as part:
        projected = (latents - part["mean"]) @ part["projection"]
        distances = [
            min(float((p - m) @ part["precision"] @ (p - m)) for m in part["class_means"])
            for p in projected
        ]
        calibration = part["calibration"]
    return np.array([np.mean(calibration < d) for d in distances])


def test_every_prediction_says_how_unlike_the_training_images_it_is(
    client: httpx.Client, model_repo: Path
) -> None:
    images = [*TEST[:4], *NOISE]
    response = client.post("/classify?model=mnist", **multipart(*images))
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    scores = np.array([p["ood_score"] for p in predictions])
    assert all(0 <= s <= 1 for s in scores)
    latents = np.array(
        client.post("/embed?model=mnist", **multipart(*images)).json()["embeddings"], np.float32
    )
    expected = by_hand(model_repo / "mnist" / "1", latents)
    calibration_step = 1 / read_manifest(model_repo / "mnist" / "1").ood.calibration_images  # type: ignore[union-attr]
    assert scores == pytest.approx(expected, abs=calibration_step + 1e-6)
    # the tiny model's bars are its own kind; uniform noise is not
    assert [p["in_distribution"] for p in predictions[4:]] == [False] * 4
    assert sum(p["in_distribution"] for p in predictions[:4]) >= 3
    assert all(p["in_distribution"] == (p["ood_score"] <= 0.99) for p in predictions)


def test_the_threshold_can_be_set_per_request(client: httpx.Client) -> None:
    image = multipart(TEST[0], NOISE[0])
    lenient = client.post("/classify?model=mnist&ood_threshold=1", **image).json()
    assert [p["in_distribution"] for p in lenient["predictions"]] == [True, True]
    strict = client.post("/reconstruct?model=mnist&ood_threshold=0", **image).json()
    scores = [r["ood_score"] for r in strict["reconstructions"]]
    assert [r["in_distribution"] for r in strict["reconstructions"]] == [s <= 0 for s in scores]
    assert scores == [p["ood_score"] for p in lenient["predictions"]]  # same image, same score
    bad = client.post("/classify?model=mnist&ood_threshold=1.5", **image)
    assert bad.status_code == 400 and "ood_threshold" in bad.json()["error"]["message"]


def test_a_png_reconstruction_carries_its_verdict_in_headers(client: httpx.Client) -> None:
    response = client.post(
        "/reconstruct?model=mnist", headers={"Accept": "image/png"}, **multipart(NOISE[1])
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert float(response.headers["x-ood-score"]) > 0.99
    assert response.headers["x-in-distribution"] == "false"


def test_v2_offers_the_score_as_an_output(client: httpx.Client) -> None:
    outputs = client.get("/v2/models/mnist").json()["outputs"]
    assert {"name": "ood_score", "datatype": "FP32", "shape": [-1]} in outputs
    body = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "UINT8",
                "shape": [2, 28, 28],
                "data": np.stack([TEST[0], NOISE[0]]).ravel().tolist(),
            }
        ],
        "outputs": [{"name": "ood_score"}, {"name": "embedding"}],
    }
    response = client.post("/v2/models/mnist/infer", json=body)
    assert response.status_code == 200, response.text
    served = response.json()["outputs"][0]
    assert served["name"] == "ood_score" and served["shape"] == [2]
    pngs = client.post("/classify?model=mnist", **multipart(TEST[0], NOISE[0])).json()
    assert served["data"] == pytest.approx([p["ood_score"] for p in pngs["predictions"]])


def test_models_describe_their_calibration(client: httpx.Client) -> None:
    ood = client.get("/models/mnist").json()["ood"]
    assert ood["threshold"] == 0.99 and ood["file"] == "ood/calibration.npz"
    assert ood["calibration_images"] == 40  # the tiny run's validation split: 10% of 400
    assert set(ood["evaluation"]) >= {"uniform noise"}


def test_a_version_without_calibration_answers_without_a_score(
    repo: Path, settings: Settings
) -> None:
    without_part(repo / "mnist" / "1", repo / "mnist", 2, "ood")
    policy = VersionPolicy.parse("all")
    live = settings.model_copy(update={"model_repository": repo, "version_policy": policy})
    with serve(create_app(live)) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        assert client.get("/models/mnist").json()["ood"] is None
        for path, key in (("/classify", "predictions"), ("/reconstruct", "reconstructions")):
            response = client.post(f"{path}?model=mnist&ood_threshold=0.5", **multipart(TEST[0]))
            assert response.status_code == 200, response.text
            (item,) = response.json()[key]
            assert item["ood_score"] is None and item["in_distribution"] is None
        png = client.post(
            "/reconstruct?model=mnist", headers={"Accept": "image/png"}, **multipart(TEST[0])
        )
        assert "x-ood-score" not in png.headers
        names = [o["name"] for o in client.get("/v2/models/mnist").json()["outputs"]]
        assert "ood_score" not in names
        body = {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "UINT8",
                    "shape": [1, 28, 28],
                    "data": TEST[0].ravel().tolist(),
                }
            ],
            "outputs": [{"name": "ood_score"}],
        }
        refused = client.post("/v2/models/mnist/infer", json=body)
        assert refused.status_code == 400 and "unknown output 'ood_score'" in refused.text
        # the calibrated version 1 still answers with its score
        one = client.post("/classify?model=mnist&version=1", **multipart(TEST[0])).json()
        assert one["predictions"][0]["ood_score"] is not None


def test_a_calibration_that_disagrees_with_its_manifest_is_refused(model_repo: Path) -> None:
    path = model_repo / "mnist" / "1"
    spec = read_manifest(path).ood
    assert spec is not None
    wrong = spec.model_copy(update={"calibration_images": spec.calibration_images + 1})
    with pytest.raises(ValueError, match="do not match the manifest"):
        OodScorer.load(path, wrong)


def test_the_score_is_the_share_of_calibration_images_below() -> None:
    calibration = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    raw = np.array([0.5, 1.0, 2.5, 4.0, 9.0], np.float32)
    assert rank(calibration, raw).tolist() == [0.0, 0.0, 0.5, 0.75, 1.0]


def test_the_manifest_lists_the_part_under_its_checksum(model_repo: Path) -> None:
    manifest = json.loads((model_repo / "mnist" / "1" / "manifest.json").read_text())
    assert manifest["ood"]["file"] in manifest["files"]
