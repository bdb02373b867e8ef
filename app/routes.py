"""Image endpoints: parse the request, make one typed call, shape the response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app import results
from app.bodies import Embeddings
from app.dependencies import (
    ImagesDep,
    InvertQuery,
    ModelDep,
    Resize,
    RunnerDep,
    SettingsDep,
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
OodThreshold = Annotated[
    float | None,
    Query(
        ge=0,
        le=1,
        description="ood_score above which in_distribution is false (default: the version's, "
        "0.99, about 1% false alarms on the model's own kind of image)",
    ),
]


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
    response.headers["X-Model-Name"] = model.name
    response.headers["X-Model-Version"] = str(model.version)
    if timing is not None:
        response.headers["X-Queue-Time-Ms"] = f"{timing.queue_s * 1000:.3f}"
        response.headers["X-Inference-Time-Ms"] = f"{timing.inference_s * 1000:.3f}"
        response.headers["X-Batch-Images"] = str(timing.batch_images)


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
async def classify(
    batch: ImagesDep,
    runner: RunnerDep,
    response: Response,
    top_k: Annotated[int | None, Query(ge=1, description="also list the k best classes")] = None,
    ood_threshold: OodThreshold = None,
) -> ClassifyResponse:
    result = await runner.run(batch.model, "classify", batch.job)
    timing_headers(response, batch.model, result.timing)
    return results.classify_response(batch.model, result.outputs, top_k, ood_threshold)


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
async def embed(
    request: Request,
    batch: ImagesDep,
    runner: RunnerDep,
    normalize: Annotated[bool, Query(description="return unit-length (L2) vectors")] = False,
) -> Response:
    result = await runner.run(batch.model, "embed", batch.job)
    latents = result.outputs.require("latent")
    if _preferred(request, NPY) == NPY:
        body = await _build(len(latents), results.embed_npy, latents, normalize)
        response = Response(body, media_type=NPY)
    else:  # JSON straight from the float32 array; response_model still documents the shape
        body = await _build(len(latents), results.embed_json, batch.model, latents, normalize)
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
async def reconstruct(
    request: Request,
    batch: ImagesDep,
    runner: RunnerDep,
    response: Response,
    ood_threshold: OodThreshold = None,
) -> Response | ReconstructResponse:
    version = batch.model
    result = await runner.run(version, "reconstruct", batch.job)
    images, timing, outputs = result.images, result.timing, result.outputs
    if _preferred(request, PNG) == PNG and len(images) == 1:
        return _png_reconstruction(version, images, result, ood_threshold)
    timing_headers(response, version, timing)
    return await _build(
        len(images), results.reconstruct_response, version, images, outputs, ood_threshold
    )


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
    request: Request,
    model: ModelDep,
    settings: SettingsDep,
    runner: RunnerDep,
    response: Response,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="neighbours per query")] = 10,
    images: Annotated[
        bool, Query(description="also return each neighbour's image, if the index stores them")
    ] = False,
    resize: Resize = True,
    invert: InvertQuery = "auto",
) -> SimilarResponse:
    """The k nearest reference images (the model's training images, unless its index was
    built over another folder) of each query image or embedding."""
    index = model.index
    if index is None:
        raise IndexNotFound(
            f"model {model.name!r} version {model.version} has no similarity index; build one "
            "with `python -m training index`"
        )
    options = image_options(model, settings, resize, invert)
    queries = await read_queries(request, options, settings.max_images)
    timing = None
    if isinstance(queries, Embeddings):
        latents = _checked(queries.vectors, model)
    else:
        result = await runner.run(model, "embed", queries)
        latents, timing = result.outputs.require("latent"), result.timing
    request.state.images = len(latents)
    timing_headers(response, model, timing)
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
