"""Image-folder datasets, built here from real Fashion-MNIST test images in several formats."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.images import ImageOptions, decode_image
from training.datasets import DatasetError, load_dataset
from training.folders import load_image_folder

CLASSES = {"Ankle boot": "boots", "Bag": "bags", "Trouser": "trousers"}
PER_CLASS = 10


def encoded(pixels: np.ndarray, fmt: str, scale: int = 1) -> bytes:
    # Stored the way photos are: dark item on a light ground, larger than 28x28, in colour.
    image = Image.fromarray(255 - pixels).resize((28 * scale, 28 * scale)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fashion_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boots/, bags/, trousers/ (PNG, JPEG, WebP), unlabelled/ of mixed classes."""
    data = load_dataset("fashion-mnist")
    root = tmp_path_factory.mktemp("folder") / "my-clothes"
    formats = ("PNG", "JPEG", "WEBP")
    for class_name, folder in CLASSES.items():
        label = data.class_names.index(class_name)
        picks = np.flatnonzero(data.y_test == label)[:PER_CLASS]
        (root / folder).mkdir(parents=True)
        for n, i in enumerate(picks):
            fmt = formats[n % len(formats)]
            (root / folder / f"{i}.{fmt.lower()}").write_bytes(encoded(data.x_test[i], fmt, 3))
    (root / "unlabelled" / "batch1").mkdir(parents=True)
    for i in range(1000, 1012):
        (root / "unlabelled" / "batch1" / f"{i}.png").write_bytes(encoded(data.x_test[i], "PNG"))
    return root


def test_classes_come_from_the_sub_folders(fashion_folder: Path) -> None:
    dataset = load_image_folder(fashion_folder, seed=0)
    assert dataset.name == "my-clothes"
    assert dataset.class_names == ("bags", "boots", "trousers")
    held_out = int(PER_CLASS * 0.2)
    assert len(dataset.x_test) == 3 * held_out
    assert sorted(np.bincount(dataset.y_test)) == [held_out] * 3
    labelled = dataset.y_train[dataset.y_train >= 0]
    assert sorted(np.bincount(labelled)) == [PER_CLASS - held_out] * 3
    assert int(np.sum(dataset.y_train == -1)) == 12  # unlabelled/ images, found recursively
    assert dataset.x_train.shape[1:] == (28, 28) and dataset.x_train.dtype == np.uint8


def test_images_are_framed_as_the_service_frames_uploads(fashion_folder: Path) -> None:
    path = sorted((fashion_folder / "bags").iterdir())[0]
    dataset = load_image_folder(fashion_folder / "bags" / "..", name="x", seed=0)
    framed = decode_image(path.read_bytes(), ImageOptions(max_pixels=10**7), 0)
    everything = np.concatenate([dataset.x_train, dataset.x_test])
    assert any(np.array_equal(framed, image) for image in everything)
    # Dark-on-light photos are inverted to the light-on-dark the models learnt.
    assert framed[0, 0] < 50 and framed.max() > 150


def test_a_fixed_test_folder_is_used_as_it_is(fashion_folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "with-test"
    for folder in ("bags", "boots", "trousers"):
        for n, path in enumerate(sorted((fashion_folder / folder).iterdir())):
            target = root / ("test" if n < 3 else "") / folder
            target.mkdir(parents=True, exist_ok=True)
            (target / path.name).write_bytes(path.read_bytes())
    dataset = load_image_folder(root)
    assert len(dataset.x_test) == 9 and len(dataset.x_train) == 21
    assert "test/ folder" in dataset.split


def test_bad_folders_are_named(fashion_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "one" / "only").mkdir(parents=True)
    (tmp_path / "one" / "only" / "a.png").write_bytes(encoded(np.zeros((28, 28), np.uint8), "PNG"))
    with pytest.raises(DatasetError, match="at least 2"):
        load_image_folder(tmp_path / "one")
    (tmp_path / "one" / "empty").mkdir()
    with pytest.raises(DatasetError, match="'empty' has no labelled image"):
        load_image_folder(tmp_path / "one")
    (tmp_path / "one" / "empty" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        load_image_folder(tmp_path / "one")
    with pytest.raises(DatasetError, match="not a folder"):
        load_image_folder(tmp_path / "missing")
