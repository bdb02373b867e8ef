"""The optional parts of a version, at export and for versions already exported: the
similarity index (`python -m training index`), the out-of-distribution calibration
(`python -m training calibrate`), the embedding calibration (`python -m training
embedding-space`) and the LiteRT graphs (`python -m training litert`). Adding one to an
exported version rewrites only that part and the manifest: the graphs, and so the version's
embeddings, stay what they were."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from app.contract.repository import (
    MANIFEST,
    EmbeddingSpec,
    IndexSpec,
    LiteRTSpec,
    Manifest,
    OodSpec,
    read_manifest,
    sha256_files,
)
from training.datasets import (
    CLASS_NAMES,
    DEFAULT_CACHE_DIR,
    Dataset,
    DatasetError,
    load_dataset,
)
from training.export import load_encoder, write_space
from training.index import ReferenceSet, folder_images, write_index
from training.litert import write_litert
from training.ood import Calibration, RunModel, calibrate
from training.train import PREDICT_BATCH, TrainConfig, embed, split_train_val

logger = logging.getLogger(__name__)


def training_reference(
    dataset: Dataset,
    encoder: Any,
    test_latents: np.ndarray,
    keep_images: bool = False,
    labelled: bool = True,
) -> ReferenceSet:
    """The similarity index's reference set at export: every training image (stored too when
    `keep_images`: 1.3 MB for 8,000 digits, 26 MB for Fashion-MNIST's 60,000). Without
    `labelled` (a model given few labels) the index stores no classes, so neighbours come back
    unlabelled rather than with labels the model never saw."""
    return ReferenceSet(
        latents=embed(encoder, dataset.x_train),
        labels=dataset.y_train if labelled else None,
        ids=[f"train/{i}" for i in range(len(dataset.x_train))],
        source=f"{dataset.name} training images ({dataset.split})"
        + ("" if labelled else ", labels not stored"),
        test=(test_latents, dataset.y_test) if labelled else None,
        images=dataset.x_train if keep_images else None,
    )


def other_datasets(name: str, cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, np.ndarray]:
    """Test images of every other installed dataset: out-of-distribution for this one."""
    others = {}
    for other in CLASS_NAMES:
        if other == name:
            continue
        try:
            others[f"{other} test images"] = load_dataset(other, cache_dir=cache_dir).x_test
        except DatasetError as err:
            logger.warning("no %s to evaluate the ood score against: %s", other, err)
    return others


def calibration(
    dataset: Dataset,
    config: TrainConfig,
    manifest: Manifest,
    run: RunModel,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    head_labels: np.ndarray | None = None,
) -> Calibration:
    """Fit on the run's training split, calibrate on its validation split (the split training
    held out), evaluate on the test split against the other datasets and noise. `head_labels`:
    the labels the head learnt from (train.TrainedModels), when not every training label."""
    splits = split_train_val(dataset, config)
    images, labels = splits.x_train, splits.y_train
    if head_labels is not None:  # only what the head learnt from, never labels it was not given
        images, labels = images[head_labels >= 0], head_labels[head_labels >= 0]
    return calibrate(
        manifest,
        run,
        (images, labels),
        splits.x_val,
        dataset.x_test,
        other_datasets(dataset.name, cache_dir),
    )


def keras_runner(encoder: Any, head: Any, decoder: Any) -> RunModel:
    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        latents = embed(encoder, images)
        probabilities = head.predict(latents, batch_size=PREDICT_BATCH, verbose=0)
        rebuilt = decoder.predict(latents, batch_size=PREDICT_BATCH, verbose=0)
        return latents, np.asarray(probabilities), np.asarray(rebuilt)

    return run


def saved_model_runner(version_dir: Path) -> RunModel:
    """The exported graphs themselves, as the service calls them."""
    parts = {p: tf.saved_model.load(str(version_dir / p)).signatures["serving_default"]
             for p in ("encoder", "classifier", "decoder")}  # fmt: skip

    def batched(part: str, name: str, key: str, values: np.ndarray) -> np.ndarray:
        chunks = [
            parts[part](**{name: tf.constant(values[i : i + PREDICT_BATCH])})[key].numpy()
            for i in range(0, len(values), PREDICT_BATCH)
        ]
        return np.concatenate(chunks)

    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        latents = batched("encoder", "pixels", "latent", images)
        probabilities = batched("classifier", "latent", "probabilities", latents)
        return latents, probabilities, batched("decoder", "latent", "reconstruction", latents)

    return run


def _rewrite_manifest(version_dir: Path, **update: Any) -> Manifest:
    manifest = read_manifest(version_dir)
    updated = manifest.model_copy(update={**update, "files": sha256_files(version_dir)})
    staging = version_dir / f".{MANIFEST}.tmp"
    staging.write_text(updated.model_dump_json(indent=2) + "\n")
    staging.replace(version_dir / MANIFEST)  # atomic: a reader sees the old or the new
    return updated


def index_existing(
    version_dir: Path,
    images: Path | None,
    data_dir: Path | None,
    cache_dir: Path,
    keep_images: bool = False,
) -> IndexSpec:
    """`python -m training index`: a version's index over a folder or its dataset's training
    split (scored on the test split when there is one), storing the reference images when
    `keep_images`; the spec it wrote."""
    manifest = read_manifest(version_dir)
    encoder = load_encoder(version_dir)
    if images is not None:
        pixels, labels, ids = folder_images(images, manifest)
        reference = ReferenceSet(
            embed(encoder, pixels),
            labels,
            ids,
            f"{len(ids)} images under {images}",
            images=pixels if keep_images else None,
        )
    else:
        dataset = load_dataset(manifest.dataset.name, data_dir, cache_dir)
        reference = training_reference(
            dataset, encoder, embed(encoder, dataset.x_test), keep_images
        )
    spec = write_index(version_dir, reference)
    _rewrite_manifest(version_dir, index=spec)
    logger.info("indexed %d reference images into %s", spec.size, version_dir / spec.file)
    return spec


def space_existing(version_dir: Path, data_dir: Path | None, cache_dir: Path) -> EmbeddingSpec:
    """`python -m training embedding-space`: a version's embedding calibration (encodings and
    dimensions), fitted on its dataset's training split as an export fits it."""
    manifest = read_manifest(version_dir)
    dataset = load_dataset(manifest.dataset.name, data_dir, cache_dir)
    latents = embed(load_encoder(version_dir), dataset.x_train)
    source = f"{dataset.name} training images ({dataset.split})"
    spec = write_space(version_dir, latents, source)
    _rewrite_manifest(version_dir, embedding=spec)
    return spec


def litert_existing(version_dir: Path) -> LiteRTSpec:
    """`python -m training litert`: a version's LiteRT graphs, converted from its SavedModels
    (which stay as they are, and so do its embeddings)."""
    spec = write_litert(version_dir, read_manifest(version_dir))
    _rewrite_manifest(version_dir, litert=spec)
    return spec


def calibrate_existing(
    version_dir: Path, data_dir: Path | None, cache_dir: Path, results_dir: Path
) -> OodSpec:
    """`python -m training calibrate`: a version's ood calibration, in place, with the
    evaluation of every candidate score written to results_dir/<dataset>/ood.json."""
    manifest = read_manifest(version_dir)
    dataset = load_dataset(manifest.dataset.name, data_dir, cache_dir)
    config = TrainConfig.from_dict(manifest.training)
    found = calibration(dataset, config, manifest, saved_model_runner(version_dir), cache_dir)
    found.write(version_dir)
    _rewrite_manifest(version_dir, ood=found.spec)
    write_ood_results(results_dir, dataset.name, version_dir, found)
    return found.spec


def write_ood_results(results_dir: Path, name: str, version_dir: Path, found: Calibration) -> Path:
    folder = results_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ood.json"
    record = {
        "export": version_dir.as_posix(),
        "spec": found.spec.model_dump(),
        "scores": found.evaluation,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
