"""Compact embeddings: `encoding` (float32, base64, int8, binary) and `dimensions` (K).

A version's embedding part (`embedding/space.npz`, `EmbeddingSpec` in the manifest) is fitted
by the export on the version's training latents:

- `mean` (D,) and `components` (D, K_max): the principal axes of the latents, ordered by the
  variance they carry, so that the first K coordinates of `(latent - mean) @ components` keep
  as much of the latents' spread as any K numbers can (`dimensions=K`; the manifest records
  the fraction per K). Not whitened: whitening gives every axis unit variance, so the first
  K would no longer keep the most of the distances a consumer searches by (measured in
  `bench/encodings.py`); and a full-length projection is a rotation, distances unchanged.
- `latent_std` (D,) and `component_std` (K_max,): the spread of each latent value and of each
  coordinate, to turn a binary query back into a vector (`/similar`).
- int8 scales: one per space (the latent; the coordinates), the 99.99th percentile of the
  absolute values over the training latents divided by 127, so a value is `q * scale`.

Encodings, defined once here for the service, the client and the measurements:
- float32: the values; base64: their float32 little-endian bytes in base64 (as OpenAI's
  `encoding_format=base64`), a third of the JSON text;
- int8: `round(x / scale)` clipped to [-127, 127];
- binary: the sign bits of the centred vector (`latent - mean`, or the coordinates, which are
  centred), 8 per byte, the first value in the most significant bit (`numpy.packbits`); the
  Hamming distance between two codes estimates the angle between the centred vectors.

This module is also the part's one definition: training writes it with `save_space`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from app.contract.errors import BadRequest, InvalidEmbedding
from app.contract.repository import EmbeddingSpec

Encoding = Literal["float32", "base64", "int8", "binary"]
ENCODINGS: tuple[Encoding, ...] = get_args(Encoding)
INT8_MAX = 127
SCALE_QUANTILE = 0.9999
MAX_DIMENSIONS = 128
"""The longest projection kept: 128 of the 1,568 latent values hold most of their variance
(the manifest's explained_variance), and it keeps the part under a megabyte."""
REPORTED_DIMENSIONS = (8, 16, 32, 64, 128, 256, 512)
SCALE_SAMPLE = 10_000  # latents the int8 scales are measured on


@dataclass(frozen=True)
class Encoded:
    """Embeddings as a consumer asked for them."""

    values: np.ndarray
    """float32 (n, K) for float32 and base64; int8 (n, K); uint8 (n, ceil(K / 8)) for binary."""
    encoding: Encoding
    dimensions: int
    """Values per embedding before packing (K, or the latent's length)."""
    scale: float | None = None
    """int8: a value is q * scale."""

    def base64_rows(self) -> list[str]:
        """Each row's bytes in base64: float32 little-endian, int8, or the packed bits."""
        raw = np.ascontiguousarray(self.values, self.values.dtype.newbyteorder("<"))
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in raw]


def binary_codes(vectors: np.ndarray) -> np.ndarray:
    """Sign bits of centred vectors, packed: uint8 (n, ceil(K / 8))."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)


def quantise(vectors: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(np.asarray(vectors) / scale), -INT8_MAX, INT8_MAX).astype(np.int8)


def fit_space(
    latents: np.ndarray, source: str, max_dimensions: int = MAX_DIMENSIONS
) -> tuple[EmbeddingSpec, dict[str, np.ndarray]]:
    """The part for these training latents: its manifest entry and its arrays."""
    latents = np.asarray(latents, np.float64)
    mean = latents.mean(axis=0)
    centred = latents - mean
    covariance = centred.T @ centred / max(len(latents) - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0, None)
    kept = min(max_dimensions, latents.shape[1], len(latents))
    components = eigenvectors[:, order[:kept]]
    # A sign convention, so that refitting the same latents gives the same coordinates.
    components *= np.where(components[np.abs(components).argmax(axis=0), range(kept)] < 0, -1, 1)
    picked = np.random.default_rng(0).permutation(len(latents))[:SCALE_SAMPLE]
    total = float(eigenvalues.sum()) or 1.0
    spec = EmbeddingSpec(
        max_dimensions=kept,
        int8_scale=_scale(latents[picked]),
        int8_scale_reduced=_scale(centred[picked] @ components),
        explained_variance={
            str(k): round(float(eigenvalues[:k].sum()) / total, 4)
            for k in (*REPORTED_DIMENSIONS, kept)
            if k <= kept
        },
        fitted_on=len(latents),
        source=source,
    )
    arrays = {
        "mean": mean,
        "components": components,
        "latent_std": centred.std(axis=0),
        "component_std": np.sqrt(eigenvalues[:kept]),
    }
    return spec, {name: np.asarray(value, np.float32) for name, value in arrays.items()}


def _scale(values: np.ndarray) -> float:
    return float(np.quantile(np.abs(values), SCALE_QUANTILE)) / INT8_MAX or 1.0


def save_space(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stored: dict[str, Any] = dict(arrays)
    with path.open("wb") as handle:
        np.savez(handle, **stored)


class EmbeddingSpace:
    """A version's fitted space: reduces, encodes and (for queries) decodes its embeddings."""

    def __init__(self, spec: EmbeddingSpec, arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.mean = arrays["mean"]
        self.components = arrays["components"]
        self.latent_std = arrays["latent_std"]
        self.component_std = arrays["component_std"]

    @classmethod
    def load(cls, version_dir: Path, spec: EmbeddingSpec) -> EmbeddingSpace:
        with np.load(version_dir / spec.file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if arrays["components"].shape[1] != spec.max_dimensions:
            raise ValueError(f"{spec.file}: components do not match the manifest")
        return cls(spec, arrays)

    def reduce(self, latents: np.ndarray, dimensions: int) -> np.ndarray:
        """float32 (n, dimensions): the first coordinates along the principal axes."""
        centred = np.asarray(latents, np.float32) - self.mean
        return np.asarray(centred @ self.components[:, :dimensions], np.float32)

    def expand(self, coordinates: np.ndarray) -> np.ndarray:
        """The latents closest to these first coordinates (the rest at the mean)."""
        k = coordinates.shape[1]
        return np.asarray(self.mean + coordinates @ self.components[:, :k].T, np.float32)


def check_request(
    space: EmbeddingSpace | None, encoding: Encoding, dimensions: int | None, latent_dim: int
) -> None:
    """What a request asks is possible for this version (400 when not)."""
    if space is None and (dimensions is not None or encoding in ("int8", "binary")):
        raise BadRequest(
            f"encoding={encoding} and dimensions need the version's embedding calibration, "
            "which it was exported without (python -m training embedding-space adds it)"
        )
    if dimensions is not None and space is not None and dimensions > space.spec.max_dimensions:
        raise BadRequest(
            f"dimensions={dimensions}: this version reduces to at most "
            f"{space.spec.max_dimensions} (or leave dimensions out for all {latent_dim})"
        )


def encode(
    latents: np.ndarray,
    space: EmbeddingSpace | None,
    encoding: Encoding = "float32",
    dimensions: int | None = None,
) -> Encoded:
    """The latents (float32 (n, D)) as asked: reduced to `dimensions`, then encoded."""
    check_request(space, encoding, dimensions, latents.shape[1])
    reduced = dimensions is not None
    if space is not None and reduced:
        vectors = space.reduce(latents, dimensions)  # type: ignore[arg-type]
    else:
        vectors = np.asarray(latents, np.float32)
    k = vectors.shape[1]
    if encoding in ("float32", "base64"):
        return Encoded(vectors, encoding, k)
    assert space is not None  # check_request
    if encoding == "int8":
        scale = space.spec.int8_scale_reduced if reduced else space.spec.int8_scale
        return Encoded(quantise(vectors, scale), encoding, k, scale)
    centred = vectors if reduced else vectors - space.mean
    return Encoded(binary_codes(centred), encoding, k)


def decode(
    values: np.ndarray,
    space: EmbeddingSpace | None,
    encoding: Encoding,
    dimensions: int | None,
    latent_dim: int,
) -> np.ndarray:
    """Query embeddings sent in an encoding, back as latents (float32 (n, D)) to search with:
    exact for float32 and base64 at full length, the nearest latents otherwise."""
    check_request(space, encoding, dimensions, latent_dim)
    k = dimensions if dimensions is not None else latent_dim
    width = (k + 7) // 8 if encoding == "binary" else k
    if values.shape[1] != width:
        packed = " (packed 8 per byte)" if encoding == "binary" else ""
        raise InvalidEmbedding(
            f"embeddings have {values.shape[1]} values; this version embeds in {k}"
            f"{'' if dimensions is None else f' (dimensions={k})'}, {width} values"
            f" as {encoding}{packed}",
            0,
        )
    if encoding in ("float32", "base64"):
        vectors = np.asarray(values, np.float32)
    elif encoding == "int8":
        assert space is not None
        scale = space.spec.int8_scale_reduced if dimensions else space.spec.int8_scale
        vectors = np.asarray(values, np.float32) * scale
    else:
        assert space is not None
        signs = np.unpackbits(np.asarray(values, np.uint8), axis=1, count=k) * 2.0 - 1.0
        spread = space.component_std[:k] if dimensions else space.latent_std
        vectors = signs * spread + (0 if dimensions else space.mean)
    if dimensions is None or space is None:
        return np.asarray(vectors, np.float32)
    return space.expand(vectors)


DTYPES: dict[Encoding, str] = {"float32": "<f4", "base64": "<f4", "int8": "i1", "binary": "u1"}
"""The element type of each encoding's bytes (its base64 strings, its .npy answers)."""


def embedding_values(rows: list[list[float] | str], encoding: Encoding) -> np.ndarray:
    """Embeddings sent as /embed returns them (value lists, or base64 strings of the
    encoding's bytes), as one float64 (n, width) array; 422 naming the first bad one."""
    dtype = np.dtype(DTYPES[encoding])
    arrays: list[np.ndarray] = []
    for index, row in enumerate(rows):
        if isinstance(row, str):
            values = _from_base64(row, dtype, index)
        else:
            values = np.asarray(row, np.float64)
            if dtype.kind in "iu" and not _whole_in(values, dtype):
                info = np.iinfo(dtype)
                raise InvalidEmbedding(
                    f"embeddings[{index}]: {encoding} values are whole numbers "
                    f"{info.min if dtype.kind == 'u' else -INT8_MAX}..{info.max}",
                    index,
                )
        if arrays and len(values) != len(arrays[0]):
            raise InvalidEmbedding(
                f"embeddings[{index}] has {len(values)} values, embeddings[0] {len(arrays[0])}",
                index,
            )
        arrays.append(values)
    return np.stack(arrays)


def _whole_in(values: np.ndarray, dtype: np.dtype) -> bool:
    low = 0 if dtype.kind == "u" else -INT8_MAX
    return bool(
        np.all(values == np.rint(values))
        and values.min() >= low
        and values.max() <= np.iinfo(dtype).max
    )


def _from_base64(text: str, dtype: np.dtype, index: int) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidEmbedding(f"embeddings[{index}]: not base64", index) from None
    if not raw or len(raw) % dtype.itemsize:
        raise InvalidEmbedding(
            f"embeddings[{index}]: {len(raw)} bytes are not whole {dtype.itemsize}-byte values",
            index,
        )
    values = np.frombuffer(raw, dtype).astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InvalidEmbedding(f"embeddings[{index}]: not finite numbers", index)
    return values
