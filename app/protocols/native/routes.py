"""Image endpoints: parse the request, make one typed call, shape the response."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from app.contract.embedding import (
    EmbeddingSpace,
    Encoded,
    Encoding,
    check_request,
    decode,
    embedding_values,
    encode,
)
from app.contract.errors import IndexNotFound
from app.core.jobs import Model
from app.core.service import Inference, InferenceCore, Output, timing_metadata
from app.http.access import count_images
from app.http.dependencies import (
    ImageQuery,
    OodQuery,
    chosen_model,
    image_batch,
    parse_query,
    query_parameters,
)
from app.http.openapi import ERRORS, IMAGE_BODY, SIMILAR_BODY
from app.pipeline.bodies import Embeddings
from app.pipeline.uploads import read_queries
from app.protocols.native import render as results
from app.protocols.native.schemas import (
    ClassifyResponse,
    EmbedResponse,
    ReconstructResponse,
    SimilarResponse,
)

router = APIRouter()  # behind API keys when they are configured; served by app/http/direct.py
RECONSTRUCTION_HEADERS = ("X-Reconstruction-Error", "X-Ood-Score", "X-In-Distribution")
PNG = "image/png"
NPY = "application/x-npy"
JSON = "application/json"
INLINE_ROWS = 16  # response bodies for up to this many images are built on the event loop
MAX_K = 100
T = TypeVar("T")


class ClassifyQuery(OodQuery):
    top_k: int | None = Field(None, ge=1, description="also list the k best classes")


ENCODING_HELP = (
    "float32; base64 (each embedding's float32 little-endian bytes as one string); "
    "int8 (whole numbers, value = int8 x the answer's `scale`); binary (sign bits of the "
    "centred embedding, packed 8 per byte): int8 and binary need the version's embedding "
    "calibration (its manifest's `embedding`)"
)
DIMENSIONS = Field(
    None,
    ge=1,
    description="the first K coordinates along the version's principal axes: a shorter "
    "embedding that keeps the most of the distances (manifest: explained_variance per K); "
    "default: the whole latent",
)


class EncodingQuery(ImageQuery):
    encoding: Encoding = Field("float32", description=ENCODING_HELP)
    dimensions: int | None = DIMENSIONS


class EmbedQuery(EncodingQuery):
    normalize: bool = Field(
        False, description="return unit-length (L2) vectors (float32 and base64 only)"
    )

    @model_validator(mode="after")
    def _normalize_floats_only(self) -> EmbedQuery:
        if self.normalize and self.encoding in ("int8", "binary"):
            raise ValueError(f"normalize applies to float32 and base64, not {self.encoding}")
        return self


class SimilarQuery(EncodingQuery):
    """encoding and dimensions say how embeddings sent as queries are written."""

    k: int = Field(10, ge=1, le=MAX_K, description="neighbours per query")
    images: bool = Field(
        False, description="also return each neighbour's image, if the index stores them"
    )


async def _build(rows: int, build: Callable[..., T], *args: Any) -> T:
    """Build a response body: inline when small, in a worker thread when large.

    A thread hop costs more than serialising a few rows, but 256 embeddings take tens of
    milliseconds that would stall every other request on the event loop.
    """
    if rows <= INLINE_ROWS:
        return build(*args)
    return await run_in_threadpool(build, *args)


def _dump(build: Callable[..., BaseModel], *args: Any) -> str:
    body = build(*args)
    # `framed` is there only when asked for (?debug=framed), not as a null in every answer.
    return body.model_dump_json(exclude={"framed"} if getattr(body, "framed", 1) is None else None)


def _framed(query: ImageQuery, inference: Inference) -> list[str] | None:
    return results.framed_pngs(inference.images) if query.debug == "framed" else None


async def _json(inference: Inference, build: Callable[..., BaseModel], *args: Any) -> Response:
    """A response schema, built and serialised by pydantic once (in a thread when large).

    Returned as a Response, so FastAPI does not validate the schema a second time against the
    route's `response_model`, which still documents it; the tests validate answers against it.
    """
    body = await _build(inference.count, _dump, build, inference, *args)
    return Response(body, media_type=JSON, headers=inference.metadata)


def _preferred(request: Request, *offered: str) -> str:
    """The first of `offered` that the Accept header lists before the others; else JSON."""
    for item in request.headers.get("accept", "").split(","):
        media = item.split(";")[0].strip().lower()
        if media in offered or media == JSON:
            return media
    return JSON


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=ERRORS,
    openapi_extra={**IMAGE_BODY, "parameters": query_parameters(ClassifyQuery)},
)
async def classify(request: Request) -> Response:
    query = await parse_query(request, ClassifyQuery)
    batch = await image_batch(request, query)
    inference = await batch.run(Output.PROBABILITIES, Output.OOD_SCORE)
    framed = _framed(query, inference)
    answer = (inference, query.top_k, query.ood_threshold, framed)
    body = await _build(inference.count, results.classify_json, *answer)
    return Response(body, media_type=JSON, headers=inference.metadata)


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses={
        **ERRORS,
        200: {
            "content": {NPY: {}},
            "description": "JSON, or with `Accept: application/x-npy` the float32 (n, dim) "
            "array as a NumPy .npy file",
        },
    },
    openapi_extra={**IMAGE_BODY, "parameters": query_parameters(EmbedQuery)},
)
async def embed(request: Request) -> Response:
    query = await parse_query(request, EmbedQuery)
    batch = await image_batch(request, query)
    space, dim = batch.model.space, batch.model.manifest.latent_dim
    check_request(space, query.encoding, query.dimensions, dim)  # before the model's work
    inference = await batch.run(Output.EMBEDDING)
    as_npy = _preferred(request, NPY) == NPY
    framed = None if as_npy else _framed(query, inference)
    answer = (batch.model, inference.embeddings, query, framed, as_npy)
    body, scale = await _build(inference.count, _embed_answer, *answer)
    headers = inference.metadata
    if scale is not None:
        headers["X-Embedding-Scale"] = repr(scale)
    # JSON straight from the array; response_model still documents the shape
    return Response(body, media_type=NPY if as_npy else JSON, headers=headers)


def _embed_answer(
    model: Model, latents: np.ndarray, query: EmbedQuery, framed: list[str] | None, npy: bool
) -> tuple[bytes, float | None]:
    """The /embed body (.npy or JSON) in the asked encoding, and its int8 scale."""
    encoded = _encoded(latents, model.space, query)
    body = results.embed_npy(encoded) if npy else results.embed_json(model, encoded, framed)
    return body, encoded.scale


def _encoded(latents: np.ndarray, space: EmbeddingSpace | None, query: EmbedQuery) -> Encoded:
    encoded = encode(latents, space, query.encoding, query.dimensions)
    if query.normalize:
        return dataclasses.replace(encoded, values=results.normalized(encoded.values))
    return encoded


@router.post(
    "/reconstruct",
    response_model=ReconstructResponse,
    responses={
        **ERRORS,
        200: {
            "content": {PNG: {}},
            "description": "JSON, or with `Accept: image/png` and one input image, the PNG itself",
        },
    },
    openapi_extra={**IMAGE_BODY, "parameters": query_parameters(OodQuery)},
)
async def reconstruct(request: Request) -> Response:
    query = await parse_query(request, OodQuery)
    batch = await image_batch(request, query)
    wanted = (Output.RECONSTRUCTION, Output.RECONSTRUCTION_PIXELS, Output.OOD_SCORE)
    inference = await batch.run(*wanted)
    if _preferred(request, PNG) == PNG and inference.count == 1:
        return _png_reconstruction(inference, query.ood_threshold)
    build, framed = results.reconstruct_response, _framed(query, inference)
    return await _json(inference, build, query.ood_threshold, framed)


def _png_reconstruction(inference: Inference, ood_threshold: float | None) -> Response:
    """One reconstruction as the PNG itself; its error and ood verdict in headers."""
    png = results.encode_png(inference.reconstruction_pixels[0])  # cheaper than a thread hop
    error = inference.reconstruction_errors[0]
    response = Response(png, media_type=PNG, headers={"X-Reconstruction-Error": f"{error:.6g}"})
    (verdict,) = results.ood_verdicts(inference, ood_threshold)
    if verdict.ood_score is not None:
        response.headers["X-Ood-Score"] = f"{verdict.ood_score:.6g}"
        response.headers["X-In-Distribution"] = str(verdict.in_distribution).lower()
    response.headers.update(inference.metadata)
    return response


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=ERRORS,
    openapi_extra={**SIMILAR_BODY, "parameters": query_parameters(SimilarQuery)},
)
async def similar(request: Request) -> Response:
    """The k nearest reference images (the model's training images, unless its index was
    built over another folder) of each query image or embedding."""
    query = await parse_query(request, SimilarQuery)
    model, core = chosen_model(request, query), request.app.state.core
    index = model.index
    if index is None:
        raise IndexNotFound(
            f"model {model.name!r} version {model.version} has no similarity index; build one "
            "with `python -m training index`"
        )
    latents, metadata = await _query_latents(request, query, model, core)
    count_images(request, len(latents))
    k, images = query.k, query.images
    found = await _build(len(latents), index.search, latents, k, images)
    rows = len(latents) * (k if images else 1)  # a PNG per neighbour: the thread when many
    body = await _build(rows, _dump, results.similar_response, model, found)
    return Response(body, media_type=JSON, headers=metadata)


async def _query_latents(
    request: Request, query: SimilarQuery, model: Model, core: InferenceCore
) -> tuple[np.ndarray, dict[str, str]]:
    """The queries' latents (the embeddings sent, or those of the images sent) and the
    answer's metadata."""
    options = core.image_options(model, query.resize, query.invert)
    queries = await read_queries(request, options, core.settings.max_images)
    if isinstance(queries, Embeddings):
        values = embedding_values(queries.rows, query.encoding)
        dim = model.manifest.latent_dim
        latents = decode(values, model.space, query.encoding, query.dimensions, dim)
        return latents, timing_metadata(model, None)
    inference = await core.run(model, queries, (Output.EMBEDDING,))
    return inference.embeddings, inference.metadata


DIRECT = (classify, embed, reconstruct, similar)
"""The endpoints app/http/direct.py serves past FastAPI's request machinery."""
