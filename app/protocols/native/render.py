"""Model outputs -> response schemas (no HTTP, no TensorFlow)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import orjson
from PIL import Image

from app.contract.embedding import Encoded
from app.contract.repository import Manifest
from app.contract.similarity import Neighbours
from app.core.jobs import Model
from app.core.service import Inference
from app.protocols.native.schemas import (
    Limits,
    ModelInfo,
    ModelRef,
    Neighbour,
    OodVerdict,
    Reconstruction,
    ReconstructResponse,
    SimilarResponse,
    VersionInfo,
)
from app.settings import Settings


def model_ref(model: Model) -> ModelRef:
    return ModelRef(name=model.name, version=model.version)


def ood_verdicts(inference: Inference, threshold: float | None) -> list[OodVerdict]:
    """Per image: its ood_score and whether that is at most the threshold (the request's, else
    the version's); all null for a version without calibration."""
    spec, scores = inference.model.manifest.ood, inference.ood_scores
    if spec is None or scores is None:
        return [OodVerdict() for _ in range(inference.count)]
    limit = spec.threshold if threshold is None else threshold
    return [OodVerdict(ood_score=s, in_distribution=s <= limit) for s in scores.astype(float)]


def framed_pngs(images: np.ndarray) -> list[str]:
    """?debug=framed: each input as the model saw it, a base64 28x28 PNG."""
    return [_base64_png(image) for image in images]


def classify_json(
    inference: Inference,
    top_k: int | None,
    ood_threshold: float | None,
    framed: list[str] | None = None,
) -> bytes:
    """A `ClassifyResponse` as JSON bytes, written by orjson from plain dicts in the schema's
    field order: building a pydantic model per prediction and serialising it was the largest
    part of rendering on the event loop (docs/benchmarks.md, "Direct routes"). The schema
    still documents the answer, and the tests validate answers against it."""
    model = inference.model
    names = model.manifest.class_names
    verdicts = ood_verdicts(inference, ood_threshold)
    predictions = []
    for row, verdict in zip(inference.probabilities.astype(float), verdicts, strict=True):
        best = int(row.argmax())
        top = None
        if top_k:
            order = np.argsort(-row, kind="stable")[:top_k]
            top = [
                {"label": int(i), "class_name": names[i], "confidence": float(row[i])}
                for i in order
            ]
        predictions.append(
            {
                "ood_score": verdict.ood_score,
                "in_distribution": verdict.in_distribution,
                "label": best,
                "class_name": names[best],
                "confidence": float(row[best]),
                "probabilities": row.tolist(),
                "top_k": top,
            }
        )
    body: dict[str, Any] = {"model": _ref(model), "predictions": predictions}
    if framed is not None:
        body["framed"] = framed
    return orjson.dumps(body)


def _ref(model: Model) -> dict[str, Any]:
    """A `ModelRef` as the dict orjson writes (the answers written without pydantic)."""
    return {"name": model.name, "version": model.version}


def embed_json(model: Model, encoded: Encoded, framed: list[str] | None = None) -> bytes:
    """An `EmbedResponse` as JSON bytes, written straight from the array.

    256 embeddings are 400,000 numbers: as Python floats in a pydantic model and its JSON they
    took 84 ms here against 35 ms for orjson's direct numpy path, and each value printed as
    the shortest float32 text (round-trips exactly) is about half as long as the float64 text.
    """
    body: dict[str, Any] = {"model": _ref(model), "dim": encoded.dimensions}
    if encoded.encoding != "float32":  # the default answer stays what it always was
        body["encoding"] = encoded.encoding
    if encoded.scale is not None:
        body["scale"] = encoded.scale
    if encoded.encoding == "base64":
        body["embeddings"] = encoded.base64_rows()
    else:
        body["embeddings"] = np.ascontiguousarray(encoded.values)
    if framed is not None:
        body["framed"] = framed
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def embed_npy(encoded: Encoded) -> bytes:
    """The embeddings as a NumPy .npy file (`Accept: application/x-npy`) in their encoding's
    dtype: float32 (n, dim) (for base64 too), int8 (n, dim), or uint8 (n, dim / 8) packed
    bits; no text to write or parse, a quarter of the float JSON's size or less."""
    buffer = io.BytesIO()
    values = encoded.values
    np.save(buffer, np.ascontiguousarray(values, values.dtype.newbyteorder("<")))
    return buffer.getvalue()


def normalized(latents: np.ndarray) -> np.ndarray:
    """Unit length (L2) rows; an all-zero row stays zero."""
    norms = np.linalg.norm(latents, axis=1, keepdims=True)
    return np.asarray(latents / np.where(norms == 0, 1, norms))  # an all-zero latent stays zero


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _base64_png(pixels: np.ndarray) -> str:
    return base64.b64encode(encode_png(pixels)).decode()


def reconstruct_response(
    inference: Inference,
    ood_threshold: float | None,
    framed: list[str] | None = None,
) -> ReconstructResponse:
    errors = inference.reconstruction_errors
    verdicts = ood_verdicts(inference, ood_threshold)
    pixels = inference.reconstruction_pixels
    items = [
        Reconstruction(image_png=_base64_png(p), error=float(e), **v.model_dump())
        for p, e, v in zip(pixels, errors, verdicts, strict=True)
    ]
    return ReconstructResponse(
        model=model_ref(inference.model), reconstructions=items, framed=framed
    )


def version_info(manifest: Manifest) -> VersionInfo:
    return VersionInfo(
        name=manifest.name,
        version=manifest.version,
        dataset=manifest.dataset.model_dump(),
        class_names=manifest.class_names,
        input=manifest.input.model_dump(),
        latent_dim=manifest.latent.dim,
        latent_shape=manifest.latent.shape,
        metrics=manifest.metrics,
        signatures=manifest.signatures,
        index=manifest.index,
        ood=manifest.ood,
        created=manifest.created,
    )


def model_info(versions: list[Manifest], settings: Settings, default: bool) -> ModelInfo:
    """A model's info from its served versions' manifests, highest first."""
    served = [version_info(manifest) for manifest in versions]
    return ModelInfo(
        **served[0].model_dump(exclude={"signatures", "index", "ood"}),
        signatures=served[0].signatures,
        index=served[0].index,
        ood=served[0].ood,
        versions=served,
        version_policy=str(settings.version_policy),
        limits=Limits.model_validate(settings.model_dump(include=set(Limits.model_fields))),
        default=default,
    )


def similar_response(model: Model, found: Neighbours) -> SimilarResponse:
    names = model.manifest.class_names
    no_images: list[list[Any]] = [[None] * len(row) for row in found.ids]
    images: list[list[Any]] = found.images or no_images
    return SimilarResponse(
        model=model_ref(model),
        metric="cosine distance",
        neighbours=[
            [
                Neighbour(
                    id=id_,
                    distance=distance,
                    label=label,
                    class_name=None if label is None else names[label],
                    image_png=None if image is None else _base64_png(image),
                )
                for id_, distance, label, image in zip(ids, distances, labels, row, strict=True)
            ]
            for ids, distances, labels, row in zip(
                found.ids, found.distances, found.labels, images, strict=True
            )
        ],
    )
