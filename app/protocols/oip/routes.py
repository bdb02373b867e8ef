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
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.contract.errors import BadRequest
from app.contract.repository import IMAGE_SIDE
from app.core.jobs import Job, Model
from app.core.service import Inference, InferenceCore, Output
from app.http.access import count_images
from app.http.dependencies import CoreDep, RegistryDep
from app.http.foreign import VERSIONED, VersionedModel
from app.http.openapi import FOREIGN_ERRORS
from app.pipeline.uploads import job_of
from app.protocols.oip.tensors import (
    BYTES_INPUT,
    PIXELS_INPUT,
    InferenceRequest,
    Tensor,
    encode_response,
    parse_request,
    read_images,
)

router = APIRouter(
    prefix="/v2",
    responses=FOREIGN_ERRORS,
    tags=["Open Inference Protocol (V2)"],
)
public_router = APIRouter(
    prefix="/v2",
    responses=FOREIGN_ERRORS,
    tags=["Open Inference Protocol (V2)"],
)
EXTENSIONS = ["binary_tensor_data", "classification"]
HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True)
class OutputSpec:
    datatype: str
    output: Output
    """What the core makes it from."""


OUTPUTS = {
    "embedding": OutputSpec("FP32", Output.EMBEDDING),
    "probabilities": OutputSpec("FP32", Output.PROBABILITIES),
    "label": OutputSpec("INT64", Output.LABEL),
    "reconstruction": OutputSpec("FP32", Output.RECONSTRUCTION),
    "reconstruction_error": OutputSpec("FP32", Output.RECONSTRUCTION_ERROR),
    "ood_score": OutputSpec("FP32", Output.OOD_SCORE),
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
async def infer(model: VersionedModel, request: Request, core: CoreDep) -> Response:
    return await _infer(model, request, core)


def _wanted(body: InferenceRequest, model: Model) -> tuple[list[str], set[str], dict[str, int]]:
    """Requested outputs (all by default), those to send as binary, class_count per output."""
    asked = body.outputs or []
    offered = outputs_of(model)
    names = [o.name for o in asked] or offered
    if unknown := [n for n in names if n not in offered]:
        raise BadRequest(f"unknown output {unknown[0]!r}; outputs are {offered}")
    binary_all = _flag(body.parameters, "binary_data_output", False, "parameters")
    binary = {o.name for o in asked if _flag(o.parameters, "binary_data", binary_all, o.name)}
    if not asked and binary_all:
        binary = set(names)
    classes = {}
    for output in asked:
        count = (output.parameters or {}).get("classification")
        if count is None or (type(count) is int and count == 0):  # 0: none, as in Triton
            continue
        if output.name != "probabilities" or type(count) is not int or count < 1:
            raise BadRequest(
                f"classification applies to 'probabilities' with a whole count >= 1 "
                f"({output.name}: {count!r})"
            )
        classes[output.name] = count
    return names, binary, classes


def _flag(parameters: dict[str, Any] | None, name: str, default: bool, where: str) -> bool:
    """A boolean parameter: a JSON true or false, nothing read by its truthiness."""
    value = (parameters or {}).get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {name!r} must be true or false, not {value!r}")
    return value


async def _infer(model: Model, request: Request, core: InferenceCore) -> Response:
    body, binary = parse_request(await request.body(), request.headers.get(HEADER_LENGTH))
    images = read_images(body, binary, core.settings.max_images)
    names, as_binary, classes = _wanted(body, model)
    count_images(request, images.count)
    if images.files is not None:
        job = job_of(images.files, core.image_options(model))
    else:
        job = Job.of(images.pixels)  # type: ignore[arg-type]
    inference = await core.run(model, job, [OUTPUTS[n].output for n in names])
    tensors = [_tensor(n, inference, classes.get(n)) for n in names]
    header = {"model_name": model.name, "model_version": str(model.version)}
    if body.id is not None:
        header["id"] = body.id
    content, json_length = encode_response(tensors, as_binary, header)
    if json_length is None:
        response = Response(content, media_type="application/json")
    else:  # JSON, then the binary outputs
        response = Response(content, media_type="application/octet-stream")
        response.headers["Inference-Header-Content-Length"] = str(json_length)
    response.headers.update(inference.metadata)
    return response


def _tensor(name: str, inference: Inference, top: int | None) -> Tensor:
    """An output tensor, from the core's typed answer."""
    if top:  # _wanted allows classification on probabilities only
        return Tensor(name, "BYTES", _classification(inference.probabilities, top, inference.model))
    spec = OUTPUTS[name]
    return Tensor(name, spec.datatype, inference.value(spec.output))


def _classification(probabilities: np.ndarray, top: int, model: Model) -> np.ndarray:
    """Triton's classification extension: the top classes as "score:index:label" strings."""
    names = model.manifest.class_names
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    rows = [
        [f"{row[i]:.6f}:{i}:{names[i]}".encode() for i in best]
        for row, best in zip(probabilities, order, strict=True)
    ]
    return np.array(rows, dtype=object)
