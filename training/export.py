"""Export to a TensorFlow-Serving-style model repository: models/<name>/<version>/...

Each part is a SavedModel whose `serving_default` signature takes and returns named tensors
(app.contract.repository.signatures); `manifest.json` beside them is the only other thing the
service reads.
A version is written to a hidden temporary directory and renamed into place, so a watcher
never sees a half-written version.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.contract.embedding import fit_space, save_space
from app.contract.repository import (
    IMAGE_SIDE,
    PARTS,
    EmbeddingSpec,
    Manifest,
    sha256_files,
)
from app.contract.similarity import GRAPH_CACHE_DIR, GraphCache
from training.index import ReferenceSet, write_index
from training.litert import write_litert
from training.ood import Calibration

logger = logging.getLogger(__name__)


def _outputs(part: str, model: keras.Model, x: tf.Tensor) -> dict[str, tf.Tensor]:
    y = model(x, training=False)
    if part == "encoder":
        return {"latent": y}
    if part == "decoder":
        # uint8 pixels come out of the graph too, so no client re-implements the rounding.
        as_uint8 = tf.cast(tf.round(tf.clip_by_value(y, 0.0, 1.0) * 255.0), tf.uint8)
        return {"reconstruction": y, "pixels": as_uint8}
    return {"probabilities": y}


def export_part(part: str, model: keras.Model, path: Path, manifest: Manifest) -> None:
    ((input_name, spec),) = manifest.signatures[part].inputs.items()
    tensor_spec = tf.TensorSpec(spec.shape, getattr(tf, spec.dtype), name=input_name)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda x: _outputs(part, model, x),
        input_signature=[tensor_spec],
    )
    archive.write_out(str(path), verbose=False)


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_repository(
    models: dict[str, keras.Model],
    out: Path,
    manifest: Manifest,
    version: int | None = None,
    reference: ReferenceSet | None = None,
    calibration: Calibration | None = None,
    copied: dict[str, Path] | None = None,
) -> Path:
    """Write encoder/decoder/classifier, their LiteRT graphs (+ the similarity index over
    `reference` and the ood `calibration`) and the manifest as out/<name>/<version>; return
    that path.

    `manifest` describes the run (training.pipeline.describe); its version, optional parts,
    checksums and time stamp are filled in here, by the export that writes the files.
    `copied` parts (a head trained on an existing version's encoder) are that version's
    SavedModels copied byte for byte, so its embeddings stay the same.
    """
    model_dir = out / manifest.name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; pick another --version")
    staging = model_dir / f".tmp-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    for part in PARTS:
        if copied and part in copied:
            shutil.copytree(copied[part], staging / part)
        else:
            export_part(part, models[part], staging / part, manifest)
    if calibration is not None:
        calibration.write(staging)
    space = write_space(staging, reference.latents, reference.source) if reference else None
    litert = write_litert(staging, manifest)  # the service serves it without TensorFlow
    exported = manifest.model_copy(
        update={
            "embedding": space,
            "litert": litert,
            "index": write_index(staging, reference, GraphCache(out / GRAPH_CACHE_DIR))
            if reference
            else None,
            "ood": calibration.spec if calibration else None,
            "version": version,
            "files": sha256_files(staging),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    Manifest.model_validate(exported.model_dump()).write(staging)  # validated as it is read
    staging.rename(final)
    logger.info("exported %s", final)
    return final


def write_space(version_dir: Path, latents: np.ndarray, source: str) -> EmbeddingSpec:
    """The embedding part (app.contract.embedding), fitted on the version's training latents."""
    spec, arrays = fit_space(latents, source)
    save_space(version_dir / spec.file, arrays)
    kept = spec.explained_variance.get("64")
    logger.info("embedding space: %d axes (64 keep %s of the variance)", spec.max_dimensions, kept)
    return spec


def load_encoder(version_dir: Path) -> keras.Model:
    """The exported encoder SavedModel as a Keras model (for experiments on a shipped model)."""
    layer = keras.layers.TFSMLayer(str(version_dir / "encoder"), call_endpoint="serving_default")
    pixels = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="pixels")
    return keras.Model(pixels, layer(pixels)["latent"])


def load_decoder(version_dir: Path, latent_dim: int) -> keras.Model:
    """The exported decoder SavedModel as a Keras model (latent -> 0-1 reconstruction)."""
    layer = keras.layers.TFSMLayer(str(version_dir / "decoder"), call_endpoint="serving_default")
    latent = keras.Input((latent_dim,), name="latent")
    return keras.Model(latent, layer(latent)["reconstruction"])
