"""The model repository on disk: <root>/<name>/<version>/{encoder,decoder,classifier}/ + manifest.

Reading manifests and checking checksums needs no TensorFlow; a version counts only when its
manifest parses, names the three parts and every file it lists matches its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "manifest.json"
PARTS = ("encoder", "decoder", "classifier")


class RepositoryError(RuntimeError):
    """The repository or one version in it cannot be served; the message says why."""


class InputSpec(BaseModel):
    name: str
    dtype: str
    shape: list[int]
    range: list[int]
    polarity: str
    fit_box: int = Field(28, description="longer side of a resized upload, in pixels")
    centre_of_mass: bool = Field(False, description="centre resized uploads by mass")


class LatentSpec(BaseModel):
    shape: list[int]
    dim: int


class DatasetInfo(BaseModel):
    name: str
    split: str
    train_images: int
    test_images: int


class Manifest(BaseModel):
    """manifest.json as written by `python -m training train`."""

    model_config = ConfigDict(extra="allow")

    format: int
    name: str
    version: int
    dataset: DatasetInfo
    class_names: list[str]
    input: InputSpec
    latent: LatentSpec
    preprocessing: str
    training: dict[str, Any]
    metrics: dict[str, Any]
    signatures: dict[str, dict[str, dict[str, Any]]]
    files: dict[str, str]
    created: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.input.shape)

    @property
    def latent_dim(self) -> int:
        return self.latent.dim


def read_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RepositoryError(f"{version_dir}: no {MANIFEST} (incomplete version)") from None
    except (json.JSONDecodeError, ValidationError) as err:
        raise RepositoryError(f"{path}: invalid manifest: {err}") from None
    if missing := [part for part in PARTS if part not in manifest.signatures]:
        raise RepositoryError(f"{path}: no signature for {missing}")
    if str(manifest.version) != version_dir.name or manifest.name != version_dir.parent.name:
        raise RepositoryError(
            f"{path}: says {manifest.name}/{manifest.version}, lives at "
            f"{version_dir.parent.name}/{version_dir.name}"
        )
    return manifest


def verified_manifest(version_dir: Path) -> Manifest:
    """The version's manifest, once every file it lists has been checked."""
    manifest = read_manifest(version_dir)
    verify_files(version_dir, manifest)
    return manifest


def verify_files(version_dir: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists and matches its sha256."""
    for relative, expected in manifest.files.items():
        path = version_dir / relative
        if not path.is_file():
            raise RepositoryError(f"{version_dir}: missing {relative}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise RepositoryError(f"{version_dir}: checksum mismatch for {relative}")
    for part in PARTS:
        if not (version_dir / part / "saved_model.pb").is_file():
            raise RepositoryError(f"{version_dir}: {part}/saved_model.pb missing")


def version_dirs(model_dir: Path) -> list[Path]:
    """Numbered version directories, newest first; hidden staging dirs are skipped."""
    numbered = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(numbered, key=lambda p: int(p.name), reverse=True)


def model_names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def latest_version(root: Path, name: str) -> tuple[Path, Manifest]:
    """The newest version of `name` whose manifest reads and whose files check out."""
    model_dir = root / name
    if not model_dir.is_dir():
        raise RepositoryError(f"no model {name!r} in {root} (have: {model_names(root)})")
    versions = version_dirs(model_dir)
    if not versions:
        raise RepositoryError(f"{model_dir}: no numbered version directories")
    return versions[0], verified_manifest(versions[0])
