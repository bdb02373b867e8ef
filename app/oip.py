"""Open Inference Protocol (V2) over REST, as KServe and Triton speak it, so their clients
(tritonclient, the KServe SDK) work unchanged.

A model takes one input, `images` (BYTES: encoded image files, [N] or [N, 1]) or `pixels`
(UINT8 [N, 28, 28] or [N, 28, 28, 1], fed to the model as they are), and answers the
outputs asked for, all by default: `embedding` FP32 [N, D], `probabilities` FP32 [N, C],
`label` INT64 [N], `reconstruction` FP32 [N, 28, 28], `reconstruction_error` FP32 [N] and,
for a version with an out-of-distribution calibration, `ood_score` FP32 [N].
Triton's binary tensor data and classification (`class_count`) extensions are supported.
Below the protocol it is the native path: the same registry, batcher, limits and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.dependencies import RegistryDep, RunnerDep, SettingsDep, image_options
from app.errors import BadRequest
from app.foreign import VERSIONED, ForeignRoute, VersionedModel
from app.jobs import Job, Model, Operation, Outputs, Runner
from app.oip_tensors import (
    BYTES_INPUT,
    PIXELS_INPUT,
    InferenceRequest,
    Tensor,
    encode_response,
    parse_request,
    read_images,
)
from app.openapi import FOREIGN_ERRORS
from app.repository import IMAGE_SIDE
from app.results import reconstruction_errors
from app.routes import timing_headers
from app.settings import Settings
from app.uploads import job_of

router = APIRouter(
    prefix="/v2",
    route_class=ForeignRoute,
    responses=FOREIGN_ERRORS,
    tags=["Open Inference Protocol (V2)"],
)
public_router = APIRouter(
    prefix="/v2",
    route_class=ForeignRoute,
    responses=FOREIGN_ERRORS,
    tags=["Open Inference Protocol (V2)"],
)
EXTENSIONS = ["binary_tensor_data", "classification"]
HEADER_LENGTH = "inference-header-content-length"
VersionPath = Annotated[int, Path(ge=1)]


@dataclass(frozen=True)
class OutputSpec:
    datatype: str
    needs: Operation
    """The cheapest operation that makes it."""


OUTPUTS = {
    "embedding": OutputSpec("FP32", "embed"),
    "probabilities": OutputSpec("FP32", "classify"),
    "label": OutputSpec("INT64", "classify"),
    "reconstruction": OutputSpec("FP32", "reconstruct"),
    "reconstruction_error": OutputSpec("FP32", "reconstruct"),
    "ood_score": OutputSpec("FP32", "classify"),  # any composed graph makes it
}


def outputs_of(model: Model) -> list[str]:
    """The outputs this version makes: ood_score only when it is calibrated."""
    return [n for n in OUTPUTS if n != "ood_score" or model.manifest.ood is not None]


def metadata(model: Model, versions: list[int]) -> dict[str, Any]:
    """$metadata_model_response: inputs and outputs with datatypes and shapes (-1: any)."""
    side, dim, classes = IMAGE_SIDE, model.manifest.latent_dim, len(model.manifest.class_names)
    shapes = {
        "embedding": [-1, dim],
        "probabilities": [-1, classes],
        "label": [-1],
        "reconstruction": [-1, side, side],
        "reconstruction_error": [-1],
        "ood_score": [-1],
    }
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "latentserve",
        "inputs": [
            {"name": BYTES_INPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": PIXELS_INPUT, "datatype": "UINT8", "shape": [-1, side, side]},
        ],
        "outputs": [
            {"name": n, "datatype": OUTPUTS[n].datatype, "shape": shapes[n]}
            for n in outputs_of(model)
        ],
    }


@public_router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "latentserve", "version": __version__, "extensions": EXTENSIONS}


@public_router.get("/health/live", summary="Server live")
async def live() -> dict[str, bool]:
    return {"live": True}


@public_router.get("/health/ready", summary="Server ready")
async def ready(registry: RegistryDep) -> JSONResponse:
    """200 {"ready": true} once every served version is loaded and warm, else 503."""
    return JSONResponse({"ready": registry.ready}, status_code=200 if registry.ready else 503)


@router.get("/models/{name}", summary="Model metadata")
@router.get(
    "/models/{name}/versions/{version}", summary="Model version metadata", dependencies=VERSIONED
)
async def model_metadata(
    model: VersionedModel, request: Request, registry: RegistryDep
) -> dict[str, Any]:
    named = "version" in request.path_params
    return metadata(model, [model.version] if named else registry.served()[model.name])


@router.get("/models/{name}/ready", summary="Model ready")
@router.get(
    "/models/{name}/versions/{version}/ready", summary="Model version ready", dependencies=VERSIONED
)
async def model_ready(model: VersionedModel) -> dict[str, Any]:
    """200 when the model (version) is served and loaded; 404 or 503 when it is not."""
    return {"name": model.name, "version": str(model.version), "ready": True}


INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "$inference_request as JSON, optionally followed by binary tensor data "
        "(Inference-Header-Content-Length gives the JSON's length).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/models/{name}/infer", summary="Inference", openapi_extra=INFER_BODY)
@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference on a version",
    openapi_extra=INFER_BODY,
    dependencies=VERSIONED,
)
async def infer(
    model: VersionedModel, request: Request, settings: SettingsDep, runner: RunnerDep
) -> Response:
    return await _infer(model, request, settings, runner)


def _wanted(body: InferenceRequest, model: Model) -> tuple[list[str], set[str], dict[str, int]]:
    """Requested outputs (all by default), those to send as binary, class_count per output."""
    asked = body.outputs or []
    offered = outputs_of(model)
    names = [o.name for o in asked] or offered
    if unknown := [n for n in names if n not in offered]:
        raise BadRequest(f"unknown output {unknown[0]!r}; outputs are {offered}")
    binary_all = bool((body.parameters or {}).get("binary_data_output", False))
    binary = {o.name for o in asked if (o.parameters or {}).get("binary_data", binary_all)}
    if not asked and binary_all:
        binary = set(names)
    classes = {o.name: (o.parameters or {}).get("classification", 0) for o in asked}
    classes = {n: k for n, k in classes.items() if k}
    for n, k in classes.items():
        if n != "probabilities" or not isinstance(k, int) or k < 1:
            raise BadRequest(f"classification applies to 'probabilities' with a count >= 1 ({n})")
    return names, binary, classes


def _operation(names: list[str]) -> Operation:
    needed = {OUTPUTS[n].needs for n in names}
    return needed.pop() if len(needed) == 1 else "full"


async def _infer(model: Model, request: Request, settings: Settings, runner: Runner) -> Response:
    body, binary = parse_request(await request.body(), request.headers.get(HEADER_LENGTH))
    images = read_images(body, binary, settings.max_images)
    names, as_binary, classes = _wanted(body, model)
    request.state.images = images.count  # for the access log line
    if images.files is not None:
        job = job_of(images.files, image_options(model, settings, True, "auto"))
    else:
        job = Job.of(images.pixels)  # type: ignore[arg-type]
    result = await runner.run(model, _operation(names), job)
    tensors = [_tensor(n, result.outputs, result.images, model, classes.get(n)) for n in names]
    header = {"model_name": model.name, "model_version": str(model.version)}
    if body.id is not None:
        header["id"] = body.id
    content, json_length = encode_response(tensors, as_binary, header)
    if json_length is None:
        response = Response(content, media_type="application/json")
    else:  # JSON, then the binary outputs
        response = Response(content, media_type="application/octet-stream")
        response.headers["Inference-Header-Content-Length"] = str(json_length)
    timing_headers(response, model, result.timing)
    return response


def _tensor(
    name: str, outputs: Outputs, images: np.ndarray, model: Model, top: int | None
) -> Tensor:
    if name == "embedding":
        return Tensor(name, "FP32", outputs.require("latent"))
    if name == "ood_score":
        return Tensor(name, "FP32", outputs.require("ood_score"))
    if name in ("probabilities", "label"):
        probabilities = outputs.require("probabilities")
        if name == "label":
            return Tensor(name, "INT64", probabilities.argmax(axis=1).astype(np.int64))
        if top:
            return Tensor(name, "BYTES", _classification(probabilities, top, model))
        return Tensor(name, "FP32", probabilities)
    reconstruction = outputs.require("reconstruction")
    if name == "reconstruction":
        return Tensor(name, "FP32", reconstruction)
    return Tensor(name, "FP32", reconstruction_errors(images, reconstruction).astype(np.float32))


def _classification(probabilities: np.ndarray, top: int, model: Model) -> np.ndarray:
    """Triton's classification extension: the top classes as "score:index:label" strings."""
    names = model.manifest.class_names
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    rows = [
        [f"{row[i]:.6f}:{i}:{names[i]}".encode() for i in best]
        for row, best in zip(probabilities, order, strict=True)
    ]
    return np.array(rows, dtype=object)
