"""The README's path for a new user: train with the CLI into a repository, then serve it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.repository import RepositoryError
from app.settings import Settings
from latentserve.idx import write_idx
from tests.app.conftest import digit_like, png_bytes, serve, wait_ready
from tests.conftest import tiny_dataset
from training.datasets import IDX_FILES

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
    assert sorted(p.name for p in trained_repository.iterdir()) == [".reports", "fashion-mnist"]
    assert (trained_repository / ".reports" / "training.md").is_file()
    assert (
        trained_repository / ".reports" / "results" / "fashion-mnist" / "metrics.json"
    ).is_file()


def test_the_trained_repository_serves_over_http(
    trained_repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (trained_repository / "notes").mkdir()  # a stray directory that holds no model version
    settings = Settings(model_repository=trained_repository)
    with (
        caplog.at_level(logging.WARNING, logger="app.registry"),
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
