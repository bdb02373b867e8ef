"""HTTP routes: parse the request, make one typed call, shape the response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from app import results
from app.errors import ModelNotFound, NotReady
from app.images import ImageOptions, Invert
from app.jobs import Job, Model, Runner, Timing
from app.registry import ModelRegistry
from app.schemas import (
    ClassifyResponse,
    EmbedResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    ModelList,
    ReconstructResponse,
)
from app.settings import Settings
from app.uploads import read_images

router = APIRouter()  # behind API keys when they are configured
public_router = APIRouter()  # health probes stay open
TIMING_HEADERS = (
    "X-Model-Name",
    "X-Model-Version",
    "X-Queue-Time-Ms",
    "X-Inference-Time-Ms",
    "X-Batch-Images",
)

PNG = "image/png"
INLINE_ROWS = 16  # response bodies for up to this many images are built on the event loop
T = TypeVar("T")
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One or more images, in any of three forms.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                        }
                    },
                    "required": ["file"],
                    "additionalProperties": False,
                },
                "encoding": {"file": {"contentType": "image/*"}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/InstancesRequest"}},
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed request",
        401: "missing or invalid API key (only when keys are configured)",
        404: "unknown model",
        413: "body or image count over the limit",
        415: "unsupported content type",
        422: "undecodable or invalid image (error.index names it)",
        429: "batch queue full; retry after Retry-After seconds",
        503: "models not loaded yet",
        504: "no result within request_timeout_ms (queue time included)",
    }.items()
}


# Dependencies are `async def` although they only read app.state: FastAPI runs a plain `def`
# dependency in its thread pool, and three thread hops per request showed up under load.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


ModelName = Annotated[
    str | None, Query(description="model to use; default: the service's default model")
]
Resize = Annotated[
    bool, Query(description="fit non-28x28 images into 28x28; false makes them a 422")
]
InvertQuery = Annotated[
    Invert,
    Query(
        description="invert polarity: auto detects dark strokes on a light ground by the "
        "image border; true/false force it"
    ),
]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class ImageBatch:
    """The model a request picked and its images (decoded later, in the worker thread)."""

    model: Model
    job: Job


async def image_batch(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    model: ModelName = None,
    resize: Resize = True,
    invert: InvertQuery = "auto",
) -> ImageBatch:
    """Dependency shared by the image endpoints: resolve the model, then read the images."""
    version = registry.get(model)
    spec = version.manifest.input
    options = ImageOptions(
        max_pixels=settings.max_image_pixels,
        resize=resize,
        invert=invert,
        fit_box=spec.fit_box,
        centre_of_mass=spec.centre_of_mass,
    )
    job = await read_images(request, options, settings.max_images)
    request.state.images = job.count  # for the access log line
    return ImageBatch(version, job)


ImagesDep = Annotated[ImageBatch, Depends(image_batch)]


async def _build(rows: int, build: Callable[..., T], *args: Any) -> T:
    """Build a response body: inline when small, in a worker thread when large.

    A thread hop costs more than serialising a few rows, but 256 embeddings take tens of
    milliseconds that would stall every other request on the event loop.
    """
    if rows <= INLINE_ROWS:
        return build(*args)
    return await run_in_threadpool(build, *args)


def _timing_headers(response: Response, model: Model, timing: Timing) -> None:
    """Every image response names the model version and how long it queued and ran."""
    response.headers["X-Model-Name"] = model.name
    response.headers["X-Model-Version"] = str(model.version)
    response.headers["X-Queue-Time-Ms"] = f"{timing.queue_s * 1000:.3f}"
    response.headers["X-Inference-Time-Ms"] = f"{timing.inference_s * 1000:.3f}"
    response.headers["X-Batch-Images"] = str(timing.batch_images)


@router.post(
    "/classify", response_model=ClassifyResponse, responses=ERRORS, openapi_extra=IMAGE_BODY
)
async def classify(
    batch: ImagesDep,
    runner: RunnerDep,
    response: Response,
    top_k: Annotated[int | None, Query(ge=1, description="also list the k best classes")] = None,
) -> ClassifyResponse:
    result = await runner.run(batch.model, "classify", batch.job)
    _timing_headers(response, batch.model, result.timing)
    return results.classify_response(batch.model, result.outputs.require("probabilities"), top_k)


@router.post("/embed", response_model=EmbedResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def embed(
    batch: ImagesDep,
    runner: RunnerDep,
    normalize: Annotated[bool, Query(description="return unit-length (L2) vectors")] = False,
) -> Response:
    result = await runner.run(batch.model, "embed", batch.job)
    latents = result.outputs.require("latent")
    # JSON straight from the float32 array; response_model still documents the shape.
    body = await _build(len(latents), results.embed_json, batch.model, latents, normalize)
    response = Response(body, media_type="application/json")
    _timing_headers(response, batch.model, result.timing)
    return response


def _wants_png(request: Request) -> bool:
    """True when the client prefers image/png over JSON (the first of them it lists)."""
    for item in request.headers.get("accept", "").split(","):
        media = item.split(";")[0].strip().lower()
        if media in (PNG, "application/json"):
            return media == PNG
    return False


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
    request: Request, batch: ImagesDep, runner: RunnerDep, response: Response
) -> Response | ReconstructResponse:
    version = batch.model
    result = await runner.run(version, "reconstruct", batch.job)
    images, timing = result.images, result.timing
    reconstructions = result.outputs.require("reconstruction")
    pixels = result.outputs.require("pixels")
    if _wants_png(request) and len(images) == 1:
        png = results.encode_png(pixels[0])  # one 28x28 PNG: cheaper than a thread hop
        error = results.reconstruction_errors(images, reconstructions)[0]
        response = Response(png, media_type=PNG, headers={"X-Reconstruction-Error": f"{error:.6g}"})
        _timing_headers(response, version, timing)
        return response
    _timing_headers(response, version, timing)
    return await _build(
        len(images), results.reconstruct_response, version, images, reconstructions, pixels
    )


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep, settings: SettingsDep) -> ModelList:
    return ModelList(
        models=[
            results.model_info(m, settings, name == registry.default_name)
            for name, m in registry.manifests().items()
        ]
    )


@router.get("/models/{name}", response_model=ModelInfo, responses={404: ERRORS[404]})
async def get_model(name: str, registry: RegistryDep, settings: SettingsDep) -> ModelInfo:
    manifests = registry.manifests()
    if name not in manifests:
        raise ModelNotFound(f"unknown model {name!r}; available: {sorted(manifests)}")
    return results.model_info(manifests[name], settings, name == registry.default_name)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition of this worker's metrics."""
    registry = request.app.state.metrics.registry
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@public_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering (says nothing about the models)."""
    return Health(status="alive")


@public_router.get("/readyz", response_model=Health, responses={503: ERRORS[503]})
async def readyz(registry: RegistryDep) -> Health:
    """200 once every configured model is loaded and has answered a warm-up inference."""
    if not registry.ready:
        raise NotReady(registry.error or "models are still loading")
    return Health(status="ready", models={n: m.version for n, m in registry.manifests().items()})
