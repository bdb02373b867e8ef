"""The models in models/ load through the service's own loader and keep their reported accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract.repository import latest_version, model_names
from app.models.inference import load_version
from training.datasets import DatasetError, load_dataset

REPOSITORY = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("fashion-mnist", "mnist", "fashion-mnist-10")
FEW_LABELS = "fashion-mnist-10"  # a head trained on 10 labels per class, on fashion-mnist's encoder
MIN_TEST_IMAGES = 1000
TOLERANCE = 0.01  # one accuracy point
MAX_VERSION_BYTES = 13 * 1024 * 1024


def test_both_datasets_are_shipped() -> None:
    assert set(SHIPPED) <= set(model_names(REPOSITORY))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_answers_and_is_small(name: str) -> None:
    path, manifest = latest_version(REPOSITORY, name)  # checksums verified here
    model = load_version(path, manifest)
    latents = model.encode(np.zeros((2, 28, 28), dtype=np.uint8))
    assert latents.shape == (2, manifest.latent.dim)
    probabilities = model.classify_latents(latents)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    # 8 MiB until the LiteRT graphs (app/models/litert.py) joined the SavedModels: 3.6 MB of
    # them in fashion-mnist-10, whose head is the largest part.
    assert size < MAX_VERSION_BYTES, f"{path} is {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_keeps_its_reported_accuracy(name: str) -> None:
    path, manifest = latest_version(REPOSITORY, name)
    try:
        dataset = load_dataset(manifest.dataset.name)
    except DatasetError as err:
        pytest.skip(f"{name} test split not installed: {err}")
    if manifest.dataset.split != dataset.split:
        pytest.skip(f"installed {name} ({dataset.split}) is not the split the model reports on")
    model = load_version(path, manifest)
    count = max(MIN_TEST_IMAGES, min(len(dataset.x_test), 5000))
    images, labels = dataset.x_test[:count], dataset.y_test[:count]
    predicted = model.classify_latents(model.encode(images)).argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    assert accuracy >= manifest.metrics["accuracy"] - TOLERANCE, (
        f"{name}: {accuracy:.4f} on {count} test images, manifest reports "
        f"{manifest.metrics['accuracy']:.4f}"
    )


def test_the_few_label_model_says_what_it_saw_and_shares_the_encoder() -> None:
    path, manifest = latest_version(REPOSITORY, FEW_LABELS)
    assert manifest.dataset.labels_seen == 10 * len(manifest.class_names)
    assert manifest.training["labels_per_class"] == 10 and manifest.training["propagate"]
    source = REPOSITORY / str(manifest.training["encoder_from"]).removeprefix("models/")
    for part in ("encoder", "decoder"):  # copied byte for byte: the same embeddings
        ours = {p.relative_to(path / part): p.read_bytes() for p in (path / part).rglob("*")
                if p.is_file()}  # fmt: skip
        theirs = {p.relative_to(source / part): p.read_bytes() for p in (source / part).rglob("*")
                  if p.is_file()}  # fmt: skip
        assert ours == theirs, part
    assert manifest.metrics["accuracy"] >= 0.77  # the few-label target, on the test split


def test_service_serves_the_shipped_models_over_http() -> None:
    """What `make run` starts: the shipped repository behind a real uvicorn server."""
    import httpx

    from app.main import create_app
    from app.settings import Settings
    from tests.app.conftest import png_bytes, serve, wait_ready

    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[4:24, 13:16] = 255  # a "1"
    with (
        serve(create_app(Settings(model_repository=REPOSITORY))) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(client)
        assert set(client.get("/readyz").json()["models"]) >= set(SHIPPED)
        for name in SHIPPED:
            response = client.post(
                f"/classify?model={name}",
                content=png_bytes(digit),
                headers={"content-type": "image/png"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["model"]["name"] == name
        one = client.post(
            "/classify?model=mnist", content=png_bytes(digit), headers={"content-type": "image/png"}
        ).json()
        assert one["predictions"][0]["class_name"] == "1"
