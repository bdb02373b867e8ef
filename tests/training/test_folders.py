"""Image-folder datasets, built here from real Fashion-MNIST test images in several formats."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.contract.images import ImageOptions, decode_image
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


def test_what_a_folder_should_not_hold_is_named_and_left_out(tmp_path: Path) -> None:
    """Unreadable files, huge scans, notes and a test image that is also a training image
    are left out with a warning naming them; the run goes on with the rest."""
    data = load_dataset("fashion-mnist")
    root = tmp_path / "mixed"
    for label, name in ((1, "trousers"), (8, "bags")):
        (root / name).mkdir(parents=True)
        (root / "test" / name).mkdir(parents=True)
        for i in np.flatnonzero(data.y_test == label)[:4]:
            (root / name / f"{i}.png").write_bytes(encoded(data.x_test[i], "PNG"))
        for i in np.flatnonzero(data.y_test == label)[10:12]:
            (root / "test" / name / f"{i}.png").write_bytes(encoded(data.x_test[i], "PNG"))
    leaked = next((root / "bags").iterdir())
    (root / "test" / "bags" / "copy.png").write_bytes(leaked.read_bytes())
    jpeg = encoded(data.x_test[0], "JPEG", 3)
    (root / "bags" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "bags" / "not-an-image.png").write_bytes(b"hello")
    huge = Image.new("L", (10_000, 10_000), 255)
    huge.save(root / "trousers" / "huge-scan.png")
    (root / "notes.txt").write_text("which folder is which")
    (root / "unlabelled").mkdir()
    dataset = load_image_folder(root)
    said = " | ".join(dataset.warnings)
    assert "cut.jpg (image is truncated" in said
    assert "not-an-image.png (cannot decode" in said
    assert "huge-scan.png (" in said and "100000000 pixels" in said
    assert "not images were ignored: notes.txt" in said
    assert "test/bags/copy.png" in said and "left out of the test split" in said
    assert "unlabelled: no unlabelled images" in said
    assert len(dataset.x_train) == 8 and len(dataset.x_test) == 4  # the copy is not tested
    assert len(dataset.train_ids) == 8 and dataset.train_ids[0].startswith("bags/")


def test_two_images_a_class_still_make_a_split(tmp_path: Path) -> None:
    data = load_dataset("fashion-mnist")
    for label, name in ((1, "a"), (8, "b")):
        (tmp_path / "two" / name).mkdir(parents=True)
        for i in np.flatnonzero(data.y_test == label)[:2]:
            (tmp_path / "two" / name / f"{i}.png").write_bytes(encoded(data.x_test[i], "PNG"))
    dataset = load_image_folder(tmp_path / "two")
    assert len(dataset.x_test) == 2 and (dataset.y_train >= 0).sum() == 2


def test_too_few_labels_for_labels_per_class_is_said() -> None:
    from training.datasets import Dataset
    from training.folders import labels_per_class_warning

    labels = np.array([0] * 12 + [1] * 3 + [-1] * 5)
    images = np.zeros((20, 28, 28), np.uint8)
    dataset = Dataset("d", "s", ("boots", "bags"), images, labels, images[:2], labels[:2])
    said = labels_per_class_warning(dataset, 10)
    assert said is not None and "bags (3)" in said and "boots" not in said
    assert labels_per_class_warning(dataset, 3) is None
