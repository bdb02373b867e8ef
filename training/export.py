"""Export to a TensorFlow-Serving-style model repository: models/<name>/<version>/...

Each part is a SavedModel whose `serving_default` signature takes and returns named tensors
(see SIGNATURES); `manifest.json` beside them is the only other thing the service reads.
A version is written to a hidden temporary directory and renamed into place, so a watcher
never sees a half-written version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from training.models import IMAGE_SIDE

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
PARTS = ("encoder", "decoder", "classifier")


def signatures(latent_dim: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Input/output names, dtypes and shapes of each part's serving_default signature."""
    pixels = {"dtype": "uint8", "shape": [None, IMAGE_SIDE, IMAGE_SIDE]}
    latent = {"dtype": "float32", "shape": [None, latent_dim]}
    return {
        "encoder": {"inputs": {"pixels": pixels}, "outputs": {"latent": latent}},
        "decoder": {
            "inputs": {"latent": latent},
            "outputs": {
                "reconstruction": {"dtype": "float32", "shape": pixels["shape"]},
                "pixels": pixels,
            },
        },
        "classifier": {
            "inputs": {"latent": latent},
            "outputs": {"probabilities": {"dtype": "float32", "shape": [None, 10]}},
        },
    }


def _outputs(part: str, model: keras.Model, x: tf.Tensor) -> dict[str, tf.Tensor]:
    y = model(x, training=False)
    if part == "encoder":
        return {"latent": y}
    if part == "decoder":
        # uint8 pixels come out of the graph too, so no client re-implements the rounding.
        as_uint8 = tf.cast(tf.round(tf.clip_by_value(y, 0.0, 1.0) * 255.0), tf.uint8)
        return {"reconstruction": y, "pixels": as_uint8}
    return {"probabilities": y}


def export_part(part: str, model: keras.Model, path: Path, latent_dim: int) -> None:
    ((input_name, spec),) = signatures(latent_dim)[part]["inputs"].items()
    tensor_spec = tf.TensorSpec(spec["shape"], getattr(tf, spec["dtype"]), name=input_name)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda x: _outputs(part, model, x),
        input_signature=[tensor_spec],
    )
    archive.write_out(str(path), verbose=False)


def sha256_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative POSIX path."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digests[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_repository(
    models: dict[str, keras.Model],
    out: Path,
    name: str,
    manifest_fields: dict[str, Any],
    latent_dim: int,
    version: int | None = None,
) -> Path:
    """Write encoder/decoder/classifier + manifest as out/name/<version>; return that path."""
    model_dir = out / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; pick another --version")
    staging = model_dir / f".tmp-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    for part in PARTS:
        export_part(part, models[part], staging / part, latent_dim)
    manifest = {
        **manifest_fields,  # first, so the keys below are always this export's own
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "signatures": signatures(latent_dim),
        "files": sha256_files(staging),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    staging.rename(final)
    logger.info("exported %s", final)
    return final


def load_encoder(version_dir: Path) -> keras.Model:
    """The exported encoder SavedModel as a Keras model (for experiments on a shipped model)."""
    layer = keras.layers.TFSMLayer(str(version_dir / "encoder"), call_endpoint="serving_default")
    pixels = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="pixels")
    return keras.Model(pixels, layer(pixels)["latent"])
