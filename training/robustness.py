"""Framing robustness: do photos and scans classify as well as clean images?

`python -m training robustness --model-dir models/<name>/<version> ...` renders the test images
of each version's dataset as photos and scans (training/render.py), each distortion alone and
all together, sends every file through the service's own decoding and framing (app.contract.images,
with the options the manifest names) and the exported SavedModels, and records accuracy per
condition beside the accuracy on the same images as clean 28x28 PNGs. A file the service
refuses (a 422) counts as wrong, and is counted. Versions of one dataset and framing share
their files and framed images; each image is rendered from its own seed, so a rerun renders
the same files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from app.contract.errors import InvalidImage
from app.contract.images import ImageOptions, decode_image
from app.contract.repository import IMAGE_SIDE, Manifest, read_manifest
from training.datasets import DEFAULT_CACHE_DIR, load_dataset
from training.render import DISTORTIONS, LOOKS, Look, encode, render
from training.train import PREDICT_BATCH

logger = logging.getLogger(__name__)

DEFAULT_IMAGES = 2000
MAX_PIXELS = 4096 * 4096
CLEAN = "clean 28x28 PNG"
CONDITIONS: dict[str, Look | None] = {CLEAN: None, **DISTORTIONS, **LOOKS}
Classify = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Condition:
    name: str
    accuracy: float
    refused: int
    """Files the service answered with a 422 (counted as wrong)."""
    decode_ms: float
    """Mean time to decode and frame one file (one thread, while nothing else runs)."""


def classifier(version_dir: Path) -> Classify:
    """uint8 (n, 28, 28) -> predicted classes, through the exported encoder and head."""
    encoder = tf.saved_model.load(str(version_dir / "encoder")).signatures["serving_default"]
    head = tf.saved_model.load(str(version_dir / "classifier")).signatures["serving_default"]

    def classify(images: np.ndarray) -> np.ndarray:
        classes = []
        for start in range(0, len(images), PREDICT_BATCH):
            latent = encoder(pixels=tf.constant(images[start : start + PREDICT_BATCH]))["latent"]
            classes.append(head(latent=latent)["probabilities"].numpy().argmax(axis=1))
        return np.concatenate(classes)

    return classify


def options_of(manifest: Manifest) -> ImageOptions:
    return ImageOptions(
        max_pixels=MAX_PIXELS,
        fit_box=manifest.input.fit_box,
        centre_of_mass=manifest.input.centre_of_mass,
    )


def files_of(images: np.ndarray, look: Look | None, seed: int) -> list[bytes]:
    """The images as files: clean PNGs (`look` None) or rendered, image i from seed (seed, i)."""
    if look is None:
        return [encode(Image.fromarray(image)) for image in images]
    return [render(image, look, np.random.default_rng([seed, i])) for i, image in enumerate(images)]


def framed(files: list[bytes], options: ImageOptions) -> tuple[np.ndarray, np.ndarray, float]:
    """The files as the service frames them; which it refused; mean milliseconds per file."""
    images = np.zeros((len(files), IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    refused = np.zeros(len(files), bool)
    start = time.perf_counter()
    for i, data in enumerate(files):
        try:
            images[i] = decode_image(data, options, i)
        except InvalidImage:
            refused[i] = True
    return images, refused, (time.perf_counter() - start) / len(files) * 1000


def sample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(len(labels))[:count])


def robustness(
    version_dirs: list[Path], count: int, seed: int, cache_dir: Path = DEFAULT_CACHE_DIR
) -> dict[str, dict[str, Any]]:
    """Per version (by model name): its accuracy under every condition."""
    manifests = {path: read_manifest(path) for path in version_dirs}
    results: dict[str, dict[str, Any]] = {}
    for dataset_name in sorted({m.dataset.name for m in manifests.values()}):
        dataset = load_dataset(dataset_name, cache_dir=cache_dir)
        pick = sample(dataset.y_test, count, seed)
        images, labels = dataset.x_test[pick], dataset.y_test[pick]
        versions = [path for path, m in manifests.items() if m.dataset.name == dataset_name]
        rows: dict[Path, list[Condition]] = {path: [] for path in versions}
        classify = {path: classifier(path) for path in versions}
        for name, look in CONDITIONS.items():
            files = files_of(images, look, seed)
            by_framing: dict[ImageOptions, tuple[np.ndarray, np.ndarray, float]] = {}
            for path in versions:
                options = options_of(manifests[path])
                if options not in by_framing:
                    by_framing[options] = framed(files, options)
                inputs, refused, decode_ms = by_framing[options]
                right = (classify[path](inputs) == labels) & ~refused
                rows[path].append(
                    Condition(name, float(right.mean()), int(refused.sum()), decode_ms)
                )
                logger.info("%s, %s: %.2f%%", manifests[path].name, name, right.mean() * 100)
        for path in versions:
            manifest = manifests[path]
            results[manifest.name] = {
                "export": path.as_posix(),
                "dataset": dataset_name,
                "item": manifest.dataset.item,
                "images": len(pick),
                "seed": seed,
                "framing": manifest.input.model_dump(
                    include={"fit_box", "centre_of_mass", "framing"}
                ),
                "rows": [asdict(row) for row in rows[path]],
            }
    return results
