"""Image endpoints: parse the request, make one typed call, shape the response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app import results
from app.bodies import Embeddings
from app.dependencies import (
    ImageQuery,
    OodQuery,
    chosen_model,
    image_batch,
    image_options,
)
from app.errors import IndexNotFound, InvalidEmbedding
from app.jobs import Model, Result, Timing
from app.openapi import ERRORS, IMAGE_BODY, SIMILAR_BODY
from app.schemas import ClassifyResponse, EmbedResponse, ReconstructResponse, SimilarResponse
from app.uploads import read_queries

router = APIRouter()  # behind API keys when they are configured
TIMING_HEADERS = (
    "X-Model-Name",
    "X-Model-Version",
    "X-Queue-Time-Ms",
    "X-Inference-Time-Ms",
    "X-Batch-Images",
)
RECONSTRUCTION_HEADERS = ("X-Reconstruction-Error", "X-Ood-Score", "X-In-Distribution")
PNG = "image/png"
NPY = "application/x-npy"
JSON = "application/json"
INLINE_ROWS = 16  # response bodies for up to this many images are built on the event loop
MAX_K = 100
T = TypeVar("T")


class ClassifyQuery(OodQuery):
    top_k: int | None = Field(None, ge=1, description="also list the k best classes")


class EmbedQuery(ImageQuery):
    normalize: bool = Field(False, description="return unit-length (L2) vectors")


class SimilarQuery(ImageQuery):
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


def timing_headers(response: Response, model: Model, timing: Timing | None) -> None:
    """Every image response names the model version and how long it queued and ran."""
    response.headers.update(_timing(model, timing))


def _timing(model: Model, timing: Timing | None) -> dict[str, str]:
    headers = {"X-Model-Name": model.name, "X-Model-Version": str(model.version)}
    if timing is not None:
        headers["X-Queue-Time-Ms"] = f"{timing.queue_s * 1000:.3f}"
        headers["X-Inference-Time-Ms"] = f"{timing.inference_s * 1000:.3f}"
        headers["X-Batch-Images"] = str(timing.batch_images)
    return headers


def _dump(build: Callable[..., BaseModel], *args: Any) -> str:
    body = build(*args)
    # `framed` is there only when asked for (?debug=framed), not as a null in every answer.
    return body.model_dump_json(exclude={"framed"} if getattr(body, "framed", 1) is None else None)


def _framed(query: ImageQuery, result: Result) -> list[str] | None:
    return results.framed_pngs(result.images) if query.debug == "framed" else None


async def _json(
    result: Result, model: Model, build: Callable[..., BaseModel], *args: Any
) -> Response:
    """A response schema, built and serialised by pydantic once (in a thread when large).

    Returned as a Response, so FastAPI does not validate the schema a second time against the
    route's `response_model`, which still documents it; the tests validate answers against it.
    """
    body = await _build(len(result.images), _dump, build, *args)
    return Response(body, media_type=JSON, headers=_timing(model, result.timing))


def _preferred(request: Request, *offered: str) -> str:
    """The first of `offered` that the Accept header lists before the others; else JSON."""
    for item in request.headers.get("accept", "").split(","):
        media = item.split(";")[0].strip().lower()
        if media in offered or media == JSON:
            return media
    return JSON


@router.post(
    "/classify", response_model=ClassifyResponse, responses=ERRORS, openapi_extra=IMAGE_BODY
)
async def classify(request: Request, query: Annotated[ClassifyQuery, Query()]) -> Response:
    batch = await image_batch(request, query)
    result = await batch.run("classify")
    model, outputs = batch.model, result.outputs
    threshold = query.ood_threshold
    framed = _framed(query, result)
    return await _json(
        result, model, results.classify_response, model, outputs, query.top_k, threshold, framed
    )


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
    openapi_extra=IMAGE_BODY,
)
async def embed(request: Request, query: Annotated[EmbedQuery, Query()]) -> Response:
    batch = await image_batch(request, query)
    result = await batch.run("embed")
    normalize = query.normalize
    latents = result.outputs.require("latent")
    if _preferred(request, NPY) == NPY:
        body = await _build(len(latents), results.embed_npy, latents, normalize)
        response = Response(body, media_type=NPY)
    else:  # JSON straight from the float32 array; response_model still documents the shape
        framed = _framed(query, result)
        build = results.embed_json
        body = await _build(len(latents), build, batch.model, latents, normalize, framed)
        response = Response(body, media_type=JSON)
    timing_headers(response, batch.model, result.timing)
    return response


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
    openapi_extra=IMAGE_BODY,
)
async def reconstruct(request: Request, query: Annotated[OodQuery, Query()]) -> Response:
    batch = await image_batch(request, query)
    ood_threshold = query.ood_threshold
    version = batch.model
    result = await batch.run("reconstruct")
    images, outputs = result.images, result.outputs
    if _preferred(request, PNG) == PNG and len(images) == 1:
        return _png_reconstruction(version, images, result, ood_threshold)
    build, framed = results.reconstruct_response, _framed(query, result)
    return await _json(result, version, build, version, images, outputs, ood_threshold, framed)


def _png_reconstruction(
    model: Model, images: np.ndarray, result: Result, ood_threshold: float | None
) -> Response:
    """One reconstruction as the PNG itself; its error and ood verdict in headers."""
    png = results.encode_png(result.outputs.require("pixels")[0])  # cheaper than a thread hop
    error = results.reconstruction_errors(images, result.outputs.require("reconstruction"))[0]
    response = Response(png, media_type=PNG, headers={"X-Reconstruction-Error": f"{error:.6g}"})
    (verdict,) = results.ood_verdicts(model, result.outputs, ood_threshold)
    if verdict.ood_score is not None:
        response.headers["X-Ood-Score"] = f"{verdict.ood_score:.6g}"
        response.headers["X-In-Distribution"] = str(verdict.in_distribution).lower()
    timing_headers(response, model, result.timing)
    return response


@router.post(
    "/similar", response_model=SimilarResponse, responses=ERRORS, openapi_extra=SIMILAR_BODY
)
async def similar(
    request: Request, query: Annotated[SimilarQuery, Query()], response: Response
) -> SimilarResponse:
    """The k nearest reference images (the model's training images, unless its index was
    built over another folder) of each query image or embedding."""
    model, settings = chosen_model(request, query), request.app.state.settings
    index = model.index
    if index is None:
        raise IndexNotFound(
            f"model {model.name!r} version {model.version} has no similarity index; build one "
            "with `python -m training index`"
        )
    options = image_options(model, settings, query.resize, query.invert)
    queries = await read_queries(request, options, settings.max_images)
    timing = None
    if isinstance(queries, Embeddings):
        latents = _checked(queries.vectors, model)
    else:
        result = await request.app.state.runner.run(model, "embed", queries)
        latents, timing = result.outputs.require("latent"), result.timing
    request.state.images = len(latents)
    timing_headers(response, model, timing)
    k, images = query.k, query.images
    found = await _build(len(latents), index.search, latents, k, images)
    rows = len(latents) * (k if images else 1)  # a PNG per neighbour: the thread when many
    return await _build(rows, results.similar_response, model, found)


def _checked(vectors: np.ndarray, model: Model) -> np.ndarray:
    dim = model.manifest.latent_dim
    if vectors.shape[1] != dim:
        raise InvalidEmbedding(
            f"embeddings have {vectors.shape[1]} values; model {model.name!r} version "
            f"{model.version} embeds in {dim}",
            0,
        )
    return vectors
