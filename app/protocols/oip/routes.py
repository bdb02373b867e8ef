"""Open Inference Protocol (V2) over REST, as KServe and Triton speak it, so their clients
(tritonclient, the KServe SDK) work unchanged: the inference itself is app/protocols/oip/
inference.py, shared with gRPC; here are the URLs and Triton's binary tensor data extension.
Below the protocol it is the native path: the same registry, batcher, limits and metrics.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.core.jobs import Model
from app.core.service import InferenceCore
from app.http.access import count_images
from app.http.dependencies import RegistryDep
from app.http.foreign import NAMED, VERSIONED, VersionedModel, model_in_path
from app.http.openapi import FOREIGN_ERRORS
from app.protocols.oip.inference import metadata, read_input, run
from app.protocols.oip.tensors import encode_response, parse_request

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


@router.post(
    "/models/{name}/infer", summary="Inference", openapi_extra=INFER_BODY, dependencies=NAMED
)
@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference on a version",
    openapi_extra=INFER_BODY,
    dependencies=[*NAMED, *VERSIONED],
)
async def infer(request: Request) -> Response:
    model, core = model_in_path(request), request.app.state.core
    return await _infer(model, request, core)


async def _infer(model: Model, request: Request, core: InferenceCore) -> Response:
    body, binary = parse_request(await request.body(), request.headers.get(HEADER_LENGTH))
    images = read_input(body, binary, core)
    count_images(request, images.count)
    answer = await run(model, body, images, core)
    header = {"model_name": model.name, "model_version": str(model.version)}
    if body.id is not None:
        header["id"] = body.id
    content, json_length = encode_response(answer.tensors, answer.binary, header)
    if json_length is None:
        response = Response(content, media_type="application/json")
    else:  # JSON, then the binary outputs
        response = Response(content, media_type="application/octet-stream")
        response.headers["Inference-Header-Content-Length"] = str(json_length)
    response.headers.update(answer.inference.metadata)
    return response


DIRECT = (infer,)
"""The endpoints app/http/direct.py serves past FastAPI's request machinery."""
