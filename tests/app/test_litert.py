"""The LiteRT runtime (app/models/litert.py): the same answers as the SavedModels, without
TensorFlow in the worker, and a clear refusal where a version has no LiteRT graphs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.contract.repository import RepositoryError, latest_version, read_manifest
from app.core.jobs import OPERATIONS
from app.main import RuntimeLoader
from app.models.inference import ModelVersion, load_version
from app.models.litert import LiteRTVersion, load_litert_version
from tests.app.conftest import without_part
from tests.test_shipped_models import REPOSITORY, SHIPPED

ROOT = Path(__file__).resolve().parents[2]
FLOAT_TOLERANCE = 1e-4


def _test_images() -> np.ndarray:
    """Real Fashion-MNIST and MNIST test images when cached, with blank and noise images."""
    rng = np.random.default_rng(0)
    images = [np.zeros((1, 28, 28), np.uint8), rng.integers(0, 256, (7, 28, 28), np.uint8)]
    for name in ("fashion-mnist", "mnist"):
        cached = ROOT / ".data" / f"{name}.npz"
        if cached.is_file():
            images.append(np.load(cached)["x_test"][:100])
    return np.concatenate(images)


@pytest.mark.parametrize("name", SHIPPED)
def test_litert_answers_as_the_savedmodels_on_every_shipped_model(name: str) -> None:
    path, manifest = latest_version(REPOSITORY, name)
    tensorflow, litert = load_version(path, manifest), load_litert_version(path, manifest)
    images = _test_images()
    for operation in OPERATIONS:
        expected, got = tensorflow.run(operation, images), litert.run(operation, images)
        for output in ("latent", "probabilities", "reconstruction", "ood_score"):
            want, have = getattr(expected, output), getattr(got, output)
            assert (want is None) == (have is None), (operation, output)
            if want is not None:
                np.testing.assert_allclose(have, want, atol=FLOAT_TOLERANCE, rtol=1e-4)
        if expected.pixels is not None:
            assert got.pixels is not None and got.pixels.dtype == np.uint8
            steps = np.abs(got.pixels.astype(int) - expected.pixels.astype(int))
            assert steps.max() <= 1  # a reconstruction on a rounding tie may go either way
        if expected.probabilities is not None:
            assert got.probabilities is not None
            agree = got.probabilities.argmax(1) == expected.probabilities.argmax(1)
            assert agree.all(), f"{operation}: {np.flatnonzero(~agree)}"


def test_the_default_loader_picks_litert_where_graphs_exist(
    model_repo: Path, tmp_path: Path
) -> None:
    exported = model_repo / "fashion-mnist" / "1"
    older = without_part(exported, tmp_path / "fashion-mnist", 1, "litert")
    for path, auto_runtime in ((exported, LiteRTVersion), (older, ModelVersion)):
        loader = RuntimeLoader("auto", 1, tmp_path / "cache")
        assert isinstance(loader(path, read_manifest(path)), auto_runtime)
    assert isinstance(
        RuntimeLoader("tensorflow", 1, tmp_path / "cache")(exported, read_manifest(exported)),
        ModelVersion,
    )
    with pytest.raises(RepositoryError, match="python -m training litert --model-dir"):
        RuntimeLoader("litert", 1, tmp_path / "cache")(older, read_manifest(older))


def test_without_tensorflow_a_version_without_litert_graphs_is_refused_saying_why(
    model_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = without_part(model_repo / "mnist" / "1", tmp_path / "mnist", 1, "litert")
    monkeypatch.setitem(sys.modules, "app.models.inference", None)  # as in the image
    with pytest.raises(RepositoryError, match="TensorFlow is not installed") as refused:
        RuntimeLoader("auto", 1, tmp_path / "cache")(older, read_manifest(older))
    assert "python -m training litert" in str(refused.value)


SERVE_WITHOUT_TENSORFLOW = """
import asyncio, sys, httpx
from app.main import app_from_env

async def main():
    app = app_from_env()
    async with app.router.lifespan_context(app):
        while not app.state.registry.ready:
            assert app.state.registry.error is None, app.state.registry.error
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            png = open("docs/samples/ankle-boot.png", "rb").read()
            files = {"file": ("a.png", png)}
            answer = await client.post("/classify?model=fashion-mnist", files=files)
            assert answer.status_code == 200, answer.text
            print(answer.json()["predictions"][0]["class_name"])
    print("tensorflow" in sys.modules, "keras" in sys.modules)

asyncio.run(main())
"""


def test_the_shipped_models_serve_without_importing_tensorflow() -> None:
    env = {
        "LATENTSERVE_MODEL_REPOSITORY": str(REPOSITORY),
        "LATENTSERVE_LOG_LEVEL": "warning",
        "LATENTSERVE_RELOAD_INTERVAL_S": "0",
        "LATENTSERVE_INDEX_CACHE_DIR": str(ROOT / "models" / ".index-cache"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_TENSORFLOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    label, imported = done.stdout.strip().splitlines()
    assert label == "Ankle boot"
    assert imported == "False False"  # neither TensorFlow nor Keras in the worker
