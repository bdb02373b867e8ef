"""The similarity index part of a version: reference latents, projected, for `/similar`.

At export the reference set is the model's training images; `python -m training index` builds
one for any version over a dataset's training split or a folder of images (framed exactly as
the service frames uploads). The projection is a whitened PCA fitted on the reference latents:
as a 10-NN classifier of Fashion-MNIST's test split, cosine search in its 64 dimensions scored
87.9% against 87.4% in the raw 1568 and 86.8% unwhitened (docs/benchmarks.md), and its
int8 vectors are 3 MB for 60,000 images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract.errors import InvalidImage
from app.contract.images import ImageOptions, decode_image
from app.contract.repository import IndexSpec, Manifest
from app.contract.similarity import UNLABELLED, GraphCache, SimilarityIndex, save_reference
from training.datasets import DatasetError

logger = logging.getLogger(__name__)

PROJECTION_DIMS = 64
PCA_FIT_IMAGES = 20_000  # enough for a stable projection; the SVD of 60,000 rows is slower
KNN = 10  # neighbours that vote when the index is scored as a classifier
MAX_FOLDER_IMAGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ReferenceSet:
    """What an index is built over: latents of reference images, with labels and ids."""

    latents: np.ndarray
    labels: np.ndarray | None
    ids: list[str]
    source: str
    test: tuple[np.ndarray, np.ndarray] | None = None
    """Test-split latents and labels, to score the index as a 10-NN classifier."""
    images: np.ndarray | None = None
    """The reference images, uint8 (n, 28, 28), when the index is to store them."""


def fit_projection(latents: np.ndarray, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix (D, d) of a PCA fitted on (a sample of) `latents`."""
    rng = np.random.default_rng(seed)
    sample = latents[rng.permutation(len(latents))[:PCA_FIT_IMAGES]].astype(np.float64)
    mean = sample.mean(axis=0)
    _, singular, components = np.linalg.svd(sample - mean, full_matrices=False)
    dims = min(dims, len(singular))
    scale = np.where(singular[:dims] > 0, singular[:dims], 1.0)
    return mean.astype(np.float32), (components[:dims].T / scale).astype(np.float32)


def knn_accuracy(index: SimilarityIndex, latents: np.ndarray, labels: np.ndarray) -> float:
    """The index as a classifier: majority vote of the KNN nearest reference labels."""
    found = index.search(latents, KNN)
    predicted = [int(np.bincount(np.asarray(row, dtype=int)).argmax()) for row in found.labels]
    return float(np.mean(np.asarray(predicted) == labels))


def write_index(
    version_dir: Path, reference: ReferenceSet, cache: GraphCache | None = None
) -> IndexSpec:
    """Write the index part into `version_dir`; its spec, for the manifest. Its search graph
    is built here and saved in `cache`, so the service's first start opens it."""
    mean, projection = fit_projection(reference.latents, PROJECTION_DIMS)
    spec = IndexSpec(
        size=len(reference.ids),
        dims=projection.shape[1],
        source=reference.source,
        images=reference.images is not None,
    )
    save_reference(
        version_dir / spec.file,
        mean,
        projection,
        reference.latents,
        reference.labels,
        reference.ids,
        reference.images,
    )
    index = SimilarityIndex.load(version_dir, spec, cache)
    if reference.test is not None and reference.labels is not None:
        accuracy = knn_accuracy(index, *reference.test)
        logger.info("index: %d-NN accuracy on the test split %.4f", KNN, accuracy)
        spec = spec.model_copy(update={"knn_accuracy": accuracy})
    return spec


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".pgm"}


def image_paths(folder: Path) -> list[Path]:
    """Every image file under `folder`, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def frame_image(data: bytes, fit_box: int, centre_of_mass: bool) -> np.ndarray:
    """An image file as uint8 (28, 28), framed exactly as the service frames uploads
    (app.contract.images.decode_image); ValueError saying why when it cannot be."""
    options = ImageOptions(
        max_pixels=MAX_FOLDER_IMAGE_PIXELS, fit_box=fit_box, centre_of_mass=centre_of_mass
    )
    try:
        return decode_image(data, options, 0)
    except InvalidImage as err:
        raise ValueError(err.message) from None


def frame_images(paths: list[Path], fit_box: int, centre_of_mass: bool) -> np.ndarray:
    """The files at `paths` as uint8 (n, 28, 28), framed as the service frames uploads; a file
    that cannot be read is a DatasetError naming it."""
    images = []
    for path in paths:
        try:
            images.append(frame_image(path.read_bytes(), fit_box, centre_of_mass))
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: {err}") from None
    return np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)


def folder_images(
    folder: Path, manifest: Manifest
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Every image under `folder` (recursively), framed as the service frames uploads; labels
    from the sub-folder names that are class names (others: unlabelled); ids are the paths
    relative to `folder`."""
    paths = image_paths(folder)
    if not paths:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = frame_images(paths, manifest.input.fit_box, manifest.input.centre_of_mass)
    classes = {name: label for label, name in enumerate(manifest.class_names)}
    known = np.asarray([classes.get(path.parent.name, UNLABELLED) for path in paths])
    ids = [p.relative_to(folder).as_posix() for p in paths]
    return images, None if (known == UNLABELLED).all() else known, ids
