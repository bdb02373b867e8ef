"""The user's own images: a dataset from an image folder, as Keras' `image_dataset_from_directory`
and torchvision's `ImageFolder` lay one out.

    DIR/<class name>/*.png|jpg|...   labelled images, one sub-folder per class (2 or more)
    DIR/unlabelled/...               optional: images without a label (encoder, propagation)
    DIR/test/<class name>/...        optional: a fixed test split; otherwise TEST_FRACTION of
                                     each class's labelled images (at least one), with a seed

Every image, whatever its format and size, is framed into 28x28 by the service's own decoder
(app.contract.images.decode_image), exactly as an upload to that model will be. A file that
cannot be used (not an image, truncated, blank, larger than MAX_FOLDER_IMAGE_PIXELS) is left
out with a warning naming it; so is a test image that is also a training image. Warnings go
to the log and into the run's report; only a folder that leaves nothing to train on stops the run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from app.contract.similarity import UNLABELLED
from training.datasets import Dataset, DatasetError
from training.index import IMAGE_SUFFIXES, frame_image, image_paths

logger = logging.getLogger(__name__)

UNLABELLED_DIR = "unlabelled"
TEST_DIR = "test"
TEST_FRACTION = 0.2
FRAMING = {"fit_box": 28, "centre_of_mass": False}  # fill the frame, as Fashion-MNIST does
LISTED = 5  # files named in one warning


class _Reader:
    """Frames files, keeping what could not be used (and why) for the warnings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.skipped: list[str] = []
        self.digests: dict[bytes, str] = {}

    def read(self, paths: list[Path], training: bool = True) -> tuple[np.ndarray, list[str]]:
        """The usable files framed, and their ids; training files' digests are remembered
        (a test image that is one of them is a leak)."""
        images, ids = [], []
        for path in paths:
            relative = path.relative_to(self.root).as_posix()
            try:
                data = path.read_bytes()
                images.append(
                    frame_image(data, FRAMING["fit_box"], bool(FRAMING["centre_of_mass"]))
                )
            except (OSError, ValueError) as err:
                self.skipped.append(f"{relative} ({err})")
                continue
            ids.append(relative)
            if training:
                self.digests.setdefault(hashlib.sha256(data).digest(), relative)
        stacked = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
        return stacked, ids


def _images_in(folder: Path) -> list[Path]:
    return image_paths(folder) if folder.is_dir() else []


def _class_names(folder: Path) -> tuple[str, ...]:
    names = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and p.name not in (UNLABELLED_DIR, TEST_DIR)
    )
    if len(names) < 2:
        raise DatasetError(
            f"{folder}: needs a sub-folder of images per class, at least 2 (found {names})"
        )
    return tuple(names)


def _labelled(
    reader: _Reader, folder: Path, classes: tuple[str, ...], training: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, ids = [], [], []
    for label, name in enumerate(classes):
        before = len(reader.skipped)
        found, found_ids = reader.read(_images_in(folder / name), training)
        if not len(found) and training:
            why = "; ".join(reader.skipped[before:])
            raise DatasetError(
                f"{folder / name}: class {name!r} has no labelled image to use"
                + (f" ({why})" if why else "")
            )
        images.append(found)
        labels += [label] * len(found)
        ids += found_ids
    return np.concatenate(images), np.asarray(labels, np.int64), ids


def _held_out(labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """TEST_FRACTION of each class's images (at least one where a class has two or more)."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in range(classes):
        members = np.flatnonzero(labels == label)
        count = max(1, int(len(members) * TEST_FRACTION)) if len(members) >= 2 else 0
        picks.append(rng.permutation(members)[:count])
    return np.concatenate(picks)


def load_image_folder(folder: Path, name: str | None = None, seed: int = 0) -> Dataset:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    reader = _Reader(folder)
    classes = _class_names(folder)
    x, y, ids = _labelled(reader, folder, classes)
    warnings = []
    if (folder / TEST_DIR).is_dir():
        unknown = set(_class_names(folder / TEST_DIR)) - set(classes)
        if unknown:
            raise DatasetError(f"{folder / TEST_DIR}: classes not in training: {sorted(unknown)}")
        test_reader = _Reader(folder)
        x_test, y_test, test_ids = _labelled(test_reader, folder / TEST_DIR, classes, False)
        reader.skipped += test_reader.skipped
        leaked = [
            i for i, test_id in enumerate(test_ids) if _digest(folder / test_id) in reader.digests
        ]
        if leaked:
            warnings.append(
                f"{len(leaked)} test image(s) are also training images and were left out of "
                f"the test split: " + ", ".join(test_ids[i] for i in leaked[:LISTED])
            )
            kept = np.setdiff1d(np.arange(len(y_test)), leaked)
            x_test, y_test = x_test[kept], y_test[kept]
        split = f"image folder {folder}, with its test/ folder"
    else:
        test = _held_out(y, len(classes), seed)
        keep = np.setdiff1d(np.arange(len(y)), test)
        x_test, y_test = x[test], y[test]
        x, y, ids = x[keep], y[keep], [ids[i] for i in keep]
        split = f"image folder {folder}, {TEST_FRACTION:.0%} of each class held out for test"
    if not len(y_test):
        raise DatasetError(f"{folder}: no test images; add a test/ folder or more labelled images")
    unlabelled, unlabelled_ids = reader.read(_images_in(folder / UNLABELLED_DIR))
    if not len(unlabelled):
        warnings.append(
            f"{folder / UNLABELLED_DIR}: no unlabelled images; only the labelled ones train the "
            "encoder and the graph (few labels gain most from many unlabelled images)"
        )
    x = np.concatenate([x, unlabelled])
    y = np.concatenate([y, np.full(len(unlabelled), UNLABELLED)])
    ids += unlabelled_ids
    warnings += _problems(folder, reader.skipped)
    for warning in warnings:
        logger.warning("%s", warning)
    return Dataset(
        name or folder.resolve().name,
        split,
        classes,
        x,
        y,
        x_test,
        y_test,
        train_ids=tuple(ids),
        warnings=tuple(warnings),
    )


def _digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _problems(folder: Path, skipped: list[str]) -> list[str]:
    found = []
    if skipped:
        found.append(
            f"{len(skipped)} file(s) could not be used and were left out: "
            + "; ".join(skipped[:LISTED])
            + (" ..." if len(skipped) > LISTED else "")
        )
    others = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if others:
        found.append(
            f"{len(others)} file(s) that are not images were ignored: "
            + ", ".join(others[:LISTED])
            + (" ..." if len(others) > LISTED else "")
        )
    return found


def labels_per_class_warning(dataset: Dataset, per_class: int | None) -> str | None:
    """When a class has fewer labelled training images than asked for."""
    if per_class is None:
        return None
    counts = np.bincount(dataset.y_train[dataset.y_train >= 0], minlength=len(dataset.class_names))
    short = [(n, int(c)) for n, c in zip(dataset.class_names, counts, strict=True) if c < per_class]
    if not short:
        return None
    listed = ", ".join(f"{name} ({count})" for name, count in short)
    return (
        f"--labels-per-class {per_class}, but these classes have fewer labelled training "
        f"images, and all of theirs are used: {listed}"
    )
