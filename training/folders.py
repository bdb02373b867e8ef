"""The user's own images: a dataset from an image folder, as Keras' `image_dataset_from_directory`
and torchvision's `ImageFolder` lay one out.

    DIR/<class name>/*.png|jpg|...   labelled images, one sub-folder per class (2 or more)
    DIR/unlabelled/...               optional: images without a label (autoencoder, propagation)
    DIR/test/<class name>/...        optional: a fixed test split; otherwise TEST_FRACTION of
                                     each class's labelled images, drawn with a seed

Every image, whatever its format and size, is framed into 28x28 by the service's own decoder
(app.images.decode_image), exactly as an upload to that model will be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.similarity import UNLABELLED
from training.datasets import Dataset, DatasetError
from training.index import frame_images, image_paths

UNLABELLED_DIR = "unlabelled"
TEST_DIR = "test"
TEST_FRACTION = 0.2
FRAMING = {"fit_box": 28, "centre_of_mass": False}  # fill the frame, as Fashion-MNIST does


def _images_in(folder: Path) -> list[Path]:
    return image_paths(folder) if folder.is_dir() else []


def _read(paths: list[Path]) -> np.ndarray:
    try:
        return frame_images(paths, FRAMING["fit_box"], bool(FRAMING["centre_of_mass"]))
    except ValueError as err:  # names the file
        raise DatasetError(str(err)) from None


def _classes(folder: Path) -> tuple[str, ...]:
    names = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and p.name not in (UNLABELLED_DIR, TEST_DIR)
    )
    if len(names) < 2:
        raise DatasetError(
            f"{folder}: needs a sub-folder of images per class, at least 2 (found {names})"
        )
    for name in names:
        if not _images_in(folder / name):
            raise DatasetError(f"{folder / name}: class {name!r} has no labelled image")
    return tuple(names)


def _labelled(folder: Path, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = _images_in(folder / name)
        paths += found
        labels += [label] * len(found)
    return _read(paths), np.asarray(labels, np.int64)


def load_image_folder(folder: Path, name: str | None = None, seed: int = 0) -> Dataset:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    classes = _classes(folder)
    x, y = _labelled(folder, classes)
    if (folder / TEST_DIR).is_dir():
        unknown = set(_classes(folder / TEST_DIR)) - set(classes)
        if unknown:
            raise DatasetError(f"{folder / TEST_DIR}: classes not in training: {sorted(unknown)}")
        x_test, y_test = _labelled(folder / TEST_DIR, classes)
        split = f"image folder {folder}, with its test/ folder"
    else:
        rng = np.random.default_rng(seed)
        test = np.concatenate(
            [
                rng.permutation(np.flatnonzero(y == c))[: int(np.sum(y == c) * TEST_FRACTION)]
                for c in range(len(classes))
            ]
        )
        keep = np.setdiff1d(np.arange(len(y)), test)
        x_test, y_test, x, y = x[test], y[test], x[keep], y[keep]
        split = f"image folder {folder}, {TEST_FRACTION:.0%} of each class held out for test"
    unlabelled = _read(_images_in(folder / UNLABELLED_DIR))  # none: an empty array
    if len(unlabelled):
        x = np.concatenate([x, unlabelled])
        y = np.concatenate([y, np.full(len(unlabelled), UNLABELLED)])
    return Dataset(name or folder.resolve().name, split, classes, x, y, x_test, y_test)
