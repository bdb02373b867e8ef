"""The model repository contract: <root>/<name>/<version>/{encoder,decoder,classifier}/ + manifest.

This module is the one definition of that contract. `training/` writes manifests with the same
pydantic model the service reads them with, and takes the layout constants from here (it may
import this TensorFlow-free module; the service never imports training). A version counts only
when its manifest parses, names the three parts and every file it lists matches its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
PARTS = ("encoder", "decoder", "classifier")
IMAGE_SIDE = 28
"""Every model takes IMAGE_SIDE x IMAGE_SIDE grayscale pixels."""
PIXEL_RANGE = (0, 255)
POLARITY = "light foreground on a dark background"
FRAMING = 2
"""How the service frames an upload into the input (app.contract.framing), recorded in every
manifest.
1: cropped at a fixed stroke threshold and fitted (until 2026-12; a manifest without the field).
2: the ground estimated and removed, the noise measured and cut, the item cropped, fitted and
stretched to 255; pictures whose ground is already black frame as in 1."""


class RepositoryError(RuntimeError):
    """The repository or one version in it cannot be served; the message says why."""


class InputSpec(BaseModel):
    name: str = "pixels"
    dtype: str = "uint8"
    shape: list[int] = Field(default_factory=lambda: [IMAGE_SIDE, IMAGE_SIDE])
    range: list[int] = Field(default_factory=lambda: list(PIXEL_RANGE))
    polarity: str = POLARITY
    fit_box: int = Field(IMAGE_SIDE, description="longer side of a resized upload, in pixels")
    centre_of_mass: bool = Field(False, description="centre resized uploads by mass")
    framing: int = Field(
        1,
        description="the framing uploads get (app.contract.repository.FRAMING): what the model's "
        "image-folder training images got, and the one its accuracy on photos was measured with",
    )


class LatentSpec(BaseModel):
    shape: list[int]
    dim: int


class DatasetInfo(BaseModel):
    name: str
    split: str
    train_images: int
    test_images: int
    item: str | None = Field(
        default=None, description="what one image shows, e.g. 'handwritten digit'"
    )
    labels_seen: int | None = Field(
        default=None,
        description="labelled training images the classifier learnt from (null: not recorded; "
        "fewer than train_images: a few-label model, the rest labelled by propagation)",
    )


class TensorSpec(BaseModel):
    dtype: str
    shape: list[int | None] = Field(description="None: any size (the batch dimension)")


class Signature(BaseModel):
    """Named inputs and outputs of one SavedModel's `serving_default` signature."""

    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def signatures(latent_dim: int, classes: int) -> dict[str, Signature]:
    """The serving_default signature of each part, as exported and as served."""
    pixels = TensorSpec(dtype="uint8", shape=[None, IMAGE_SIDE, IMAGE_SIDE])
    latent = TensorSpec(dtype="float32", shape=[None, latent_dim])
    return {
        "encoder": Signature(inputs={"pixels": pixels}, outputs={"latent": latent}),
        "decoder": Signature(
            inputs={"latent": latent},
            outputs={
                "reconstruction": TensorSpec(dtype="float32", shape=pixels.shape),
                "pixels": pixels,
            },
        ),
        "classifier": Signature(
            inputs={"latent": latent},
            outputs={"probabilities": TensorSpec(dtype="float32", shape=[None, classes])},
        ),
    }


class IndexSpec(BaseModel):
    """The optional similarity index of a version (`/similar`): reference embeddings, stored
    quantised in `file`, searched with an HNSW graph (usearch) built when the version loads."""

    file: str = "index/reference.npz"
    size: int = Field(description="reference images in the index")
    dims: int = Field(description="dimensions of the whitened PCA projection it searches")
    metric: Literal["cos"] = "cos"
    source: str = Field(description="what the reference images are")
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    knn_accuracy: float | None = Field(
        default=None,
        description="10-NN majority vote over the index, as a classifier of the test split",
    )
    images: bool = Field(
        default=False,
        description="the reference images are stored too: /similar?images=true returns them",
    )


class OodSpec(BaseModel):
    """The optional out-of-distribution calibration of a version (`ood_score` in answers)."""

    file: str = "ood/calibration.npz"
    score: str = Field(
        default="mahalanobis distance to the nearest class mean, whitened PCA of the latent",
        description="what is measured",
    )
    dims: int = Field(description="dimensions of the projection")
    calibration_images: int = Field(description="held-out in-distribution images scored")
    calibration_source: str
    threshold: float = Field(
        default=0.99,
        description="ood_score above which an image is not in distribution (~1% alarms)",
    )
    evaluation: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="AUROC and FPR at 95% TPR against out-of-distribution sets, by set name",
    )


class EmbeddingSpec(BaseModel):
    """The optional embedding calibration of a version (app.contract.embedding): what
    `encoding=int8|binary` and `dimensions=K` need."""

    file: str = "embedding/space.npz"
    max_dimensions: int = Field(description="longest reduction offered (dimensions=K <= this)")
    int8_scale: float = Field(description="int8 step of the full latent: a value is q * scale")
    int8_scale_reduced: float = Field(description="int8 step of the reduced coordinates")
    explained_variance: dict[str, float] = Field(
        description="fraction of the latents' variance the first K coordinates keep, by K"
    )
    fitted_on: int = Field(description="training latents it was fitted on")
    source: str


class LiteRTSpec(BaseModel):
    """The optional LiteRT form of a version (app.models.litert): each operation's graph
    (`OPERATION_HEADS`: the encoder, then the heads it feeds) converted to a TensorFlow Lite
    flatbuffer, which the service runs without importing TensorFlow (docs/benchmarks.md,
    "Serving without TensorFlow")."""

    files: dict[str, str] = Field(description="flatbuffer of each operation, by operation")
    outputs: dict[str, list[str]] = Field(
        description="each operation's output names, in the flatbuffer's output order"
    )
    max_difference: float = Field(
        description="largest difference of any float output from the SavedModels', on the "
        "export's parity images (uint8 pixels may differ by one step where rounding ties)"
    )
    converter: str = Field(description="the TensorFlow version whose converter wrote them")


OPERATION_HEADS: dict[str, tuple[str, ...]] = {
    "embed": (),
    "classify": ("classifier",),
    "reconstruct": ("decoder",),
    "full": ("classifier", "decoder"),
}
"""Each operation's graph: one encoder pass, its latent handed to these parts (both runtimes
compose them so; app.core.jobs.OPERATIONS names the same four)."""


class Manifest(BaseModel):
    """manifest.json: written by `python -m training train`, read by the service."""

    # Fields a later format adds are kept, not refused, so an older service still reads it.
    model_config = ConfigDict(extra="allow")

    format: int = MANIFEST_FORMAT
    name: str
    version: int
    dataset: DatasetInfo
    class_names: list[str]
    input: InputSpec
    latent: LatentSpec
    preprocessing: str
    training: dict[str, Any]
    metrics: dict[str, Any]
    signatures: dict[str, Signature]
    files: dict[str, str] = Field(description="sha256 of every file, by relative POSIX path")
    created: str
    index: IndexSpec | None = None
    ood: OodSpec | None = None
    embedding: EmbeddingSpec | None = None
    litert: LiteRTSpec | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.input.shape)

    @property
    def latent_dim(self) -> int:
        return self.latent.dim

    def write(self, version_dir: Path) -> None:
        (version_dir / MANIFEST).write_text(self.model_dump_json(indent=2) + "\n")


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative POSIX path."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {path.relative_to(root).as_posix(): file_sha256(path) for path in files}


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
        if file_sha256(path) != expected:
            raise RepositoryError(f"{version_dir}: checksum mismatch for {relative}")
    for part in PARTS:
        if not (version_dir / part / "saved_model.pb").is_file():
            raise RepositoryError(f"{version_dir}: {part}/saved_model.pb missing")


def version_dirs(model_dir: Path) -> list[Path]:
    """Numbered version directories, newest first; hidden staging dirs are skipped."""
    numbered = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(numbered, key=lambda p: int(p.name), reverse=True)


def model_names(root: Path) -> list[str]:
    """Every directory of the repository that is not hidden (hidden ones: reports, staging)."""
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
