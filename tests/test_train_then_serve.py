"""The README's path for a new user: train with the CLI into a repository, then serve it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.contract.repository import RepositoryError, latest_version
from app.contract.similarity import GRAPH_CACHE_DIR, GraphCache, SimilarityIndex
from app.main import create_app
from app.settings import Settings
from latentserve.idx import write_idx
from tests.app.conftest import digit_like, png_bytes, serve, wait_ready
from tests.conftest import tiny_dataset
from training.datasets import IDX_FILES, load_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m training train --quick` on four IDX files, into a fresh repository."""
    root = tmp_path_factory.mktemp("train-then-serve")
    data = root / "idx"
    data.mkdir()
    dataset = tiny_dataset("fashion-mnist")
    arrays = {
        "train_images": dataset.x_train,
        "train_labels": dataset.y_train,
        "test_images": dataset.x_test,
        "test_labels": dataset.y_test,
    }
    for key, stem in IDX_FILES.items():
        write_idx(data / stem, arrays[key])
    out = root / "models"
    command = [sys.executable, "-m", "training", "train", "--dataset", "fashion-mnist"]
    command += ["--data-dir", str(data), "--out", str(out), "--quick"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(str(out / "fashion-mnist" / "1"))
    return out


def test_training_keeps_its_reports_out_of_the_models(trained_repository: Path) -> None:
    assert sorted(p.name for p in trained_repository.iterdir()) == [
        ".index-cache",
        ".reports",
        "fashion-mnist",
    ]
    assert (trained_repository / ".reports" / "training.md").is_file()
    assert (
        trained_repository / ".reports" / "results" / "fashion-mnist" / "metrics.json"
    ).is_file()


def test_the_export_leaves_the_search_graph_the_service_opens(trained_repository: Path) -> None:
    version, manifest = latest_version(trained_repository, "fashion-mnist")
    assert manifest.index is not None
    cache = GraphCache(trained_repository / GRAPH_CACHE_DIR)
    assert SimilarityIndex.load(version, manifest.index, cache).from_cache


def test_the_trained_repository_serves_over_http(
    trained_repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (trained_repository / "notes").mkdir()  # a stray directory that holds no model version
    settings = Settings(model_repository=trained_repository)
    with (
        caplog.at_level(logging.WARNING, logger="app.models.registry"),
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(client)
        assert client.get("/readyz").json()["models"] == {"fashion-mnist": 1}
        response = client.post(
            "/classify", content=png_bytes(digit_like(3)), headers={"content-type": "image/png"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == {"name": "fashion-mnist", "version": 1}
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert skipped == [
        f"skipping {trained_repository / 'notes'}: it holds no numbered model versions"
    ]


def test_an_explicitly_named_directory_without_versions_still_stops_the_start(
    trained_repository: Path,
) -> None:
    (trained_repository / "empty").mkdir(exist_ok=True)
    app = create_app(
        Settings(model_repository=trained_repository, models=["fashion-mnist", "empty"])
    )
    with pytest.raises(RepositoryError, match="no numbered version directories"):
        app.state.registry.plan()


@pytest.fixture(scope="module")
def folder_repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`python -m training train --images DIR` on a folder of real Fashion-MNIST test images:
    3 classes of 20 JPEG/PNG files, 5 labels each used, and an unlabelled/ folder."""
    root = tmp_path_factory.mktemp("folder-train")
    folder = root / "wardrobe"
    data = load_dataset("fashion-mnist")
    for class_name in ("Bag", "Sneaker", "Trouser"):
        label = data.class_names.index(class_name)
        (folder / class_name.lower()).mkdir(parents=True)
        for i in np.flatnonzero(data.y_test == label)[:20]:
            Image.fromarray(data.x_test[i]).save(folder / class_name.lower() / f"{i}.jpg")
    (folder / "unlabelled").mkdir()
    for i in range(2000, 2040):
        Image.fromarray(data.x_test[i]).save(folder / "unlabelled" / f"{i}.png")
    out = root / "models"
    command = [sys.executable, "-m", "training", "train", "--images", str(folder)]
    command += ["--out", str(out), "--quick", "--labels-per-class", "5"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(str(out / "wardrobe" / "1"))
    (root / "train.log").write_text(result.stderr)  # what the user saw, for the verdict test
    return out, folder


def test_a_model_trained_on_an_image_folder_serves_its_classes(
    folder_repository: tuple[Path, Path],
) -> None:
    out, folder = folder_repository
    with (
        serve(create_app(Settings(model_repository=out))) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(client)
        (info,) = [m for m in client.get("/models").json()["models"] if m["name"] == "wardrobe"]
        assert info["class_names"] == ["bag", "sneaker", "trouser"]
        assert info["dataset"]["labels_seen"] == 15  # 5 per class; the rest propagated
        sneaker = sorted((folder / "sneaker").iterdir())[0].read_bytes()
        response = client.post(
            "/classify?model=wardrobe&top_k=3",
            content=sneaker,
            headers={"content-type": "image/jpeg"},
        )
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert len(prediction["probabilities"]) == 3
    assert {c["class_name"] for c in prediction["top_k"]} == {"bag", "sneaker", "trouser"}


def test_a_few_label_run_says_how_it_compares_with_pixels(
    folder_repository: tuple[Path, Path],
) -> None:
    """The run ends with the served classifier against the pixel baselines on the terminal,
    records them in the manifest and the report, and lists what to label next."""
    out, folder = folder_repository
    said = (out.parent / "train.log").read_text()
    assert "few labels: the served classifier scores" in said
    assert "pixels, logistic regression" in said and "pixels, label spreading" in said
    assert "Ahead of the best pixel baseline" in said or "NOT AHEAD" in said
    assert "what to label next:" in said
    manifest = json.loads((out / "wardrobe" / "1" / "manifest.json").read_text())
    baselines = manifest["training"]["baselines"]
    assert set(baselines["pixels"]) == {  # a folder's graph uses mirror images by default
        "pixels, logistic regression",
        "pixels, propagation",
        "pixels, propagation, no mirror",
        "pixels, label spreading",
    }
    assert baselines["ahead"] == (baselines["lead_points"] > 0)
    assert manifest["training"]["selection"]["graph"] in ("latent", "pixels", "latent+pixels")
    suggestions = (out / ".reports" / "results" / "wardrobe" / "suggestions.csv").read_text()
    rows = [line.split(",") for line in suggestions.splitlines()[1:]]
    assert len(rows) == 20
    labelled = {p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")}
    for _, image, guess, _ in rows:  # unlabelled images, or labelled ones the run did not use
        assert (folder / image).is_file() and guess in ("bag", "sneaker", "trouser")
    assert any(row[1].startswith("unlabelled/") for row in rows) or labelled
    report = (out / ".reports" / "training.md").read_text()
    assert "against pixel baselines on the same split" in report


def test_an_exported_version_is_held_to_the_baselines_again(
    folder_repository: tuple[Path, Path], trained_repository: Path
) -> None:
    """`training baselines` measures a version's pixel baselines again on its own split, against
    the accuracy its run recorded, and the report shows both verdicts."""
    out, folder = folder_repository
    version = out / "wardrobe" / "1"
    command = [sys.executable, "-m", "training", "baselines", "--model-dir", str(version)]
    result = subprocess.run(
        [*command, "--images", str(folder)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads((version / "manifest.json").read_text())["training"]["baselines"]
    record = json.loads((out / ".reports" / "results" / "wardrobe" / "baselines.json").read_text())
    assert record["recorded"] == recorded
    again = record["remeasured"]
    assert again["served"] == recorded["served"]
    # The same split and images: the same figures as the run's, plus any baseline added since.
    for name, value in recorded["pixels"].items():
        assert again["pixels"][name] == value, name
    assert "pixels, propagation, no mirror" in again["pixels"]
    assert f"{again['lead_points']:+.2f} points" in result.stdout or "NOT AHEAD" in result.stdout
    report = out / ".reports" / "training.md"
    results = report.parent / "results"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "report",
            "--results",
            str(results),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert f"training baselines --model-dir {version.as_posix()}" in report.read_text()
    # A version trained with every label has no verdict to hold the baselines against.
    everything = trained_repository / "fashion-mnist" / "1"
    refused = subprocess.run(
        [*command[:-1], str(everything), "--dataset", "fashion-mnist"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "recorded no few-label verdict" in refused.stderr
