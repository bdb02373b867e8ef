"""TensorFlow Serving's REST API, so code written for it works against latentserve unchanged.

    GET  /v1/models/{m}[/versions/{v}]            model version status
    GET  /v1/models/{m}[/versions/{v}]/metadata   signature defs
    POST /v1/models/{m}[/versions/{v}]:predict    {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{m}[/versions/{v}]:classify   {"examples": [...]}

Signatures: `serving_default` and `classify` (outputs `probabilities`), `embed` (`embedding`),
`reconstruct` (`reconstruction`, `reconstruction_error`). An input value is an image file as
`{"b64": "..."}` or a 28x28 array of 0-255, alone or named `images` / `pixels`; they are
validated by the native JSON schema and run through the native batcher.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.convertors import Convertor, register_url_convertor

from app.contract.errors import BadRequest, PayloadTooLarge
from app.contract.repository import IMAGE_SIDE
from app.core.jobs import Model
from app.core.service import Inference, InferenceCore, Output
from app.http.access import count_images
from app.http.dependencies import RegistryDep
from app.http.foreign import NAMED, VERSIONED, VersionedModel, model_in_path
from app.http.openapi import FOREIGN_ERRORS
from app.pipeline.bodies import json_instances
from app.pipeline.uploads import job_of

router = APIRouter(
    prefix="/v1",
    responses=FOREIGN_ERRORS,
    tags=["TensorFlow Serving REST API"],
)


class SegmentConvertor(Convertor[str]):
    """A path segment up to a ':' (TF Serving puts its verbs there: m:predict), so that
    GET /v1/models/m and POST /v1/models/m:predict never match each other's paths; FastAPI
    still validates the value (a version that is not a number is a 400)."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", SegmentConvertor())
INPUT_NAMES = ("images", "pixels")
SIGNATURES: dict[str, tuple[Output, ...]] = {
    "serving_default": (Output.PROBABILITIES,),
    "classify": (Output.PROBABILITIES,),
    "embed": (Output.EMBEDDING,),
    "reconstruct": (Output.RECONSTRUCTION, Output.RECONSTRUCTION_ERROR),
}


class PredictRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # a signature name is a string, not a number

    signature_name: str = "serving_default"
    instances: list[Any] | None = Field(None, description="row format")
    inputs: Any = Field(None, description="columnar format")


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    signature_name: str = "serving_default"
    context: dict[str, Any] | None = None
    examples: list[dict[str, Any]] = Field(min_length=1)


def _status(versions: list[int]) -> dict[str, Any]:
    ok = {"error_code": "OK", "error_message": ""}
    return {
        "model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": ok} for v in versions
        ]
    }


def _tensor_info(dtype: str, shape: list[int], name: str) -> dict[str, Any]:
    dims = [{"size": str(size), "name": ""} for size in shape]
    return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


def _metadata(model: Model) -> dict[str, Any]:
    """Signature defs of the served graphs (encoder -> head / decoder), from the manifest."""
    side, dim = IMAGE_SIDE, model.manifest.latent_dim
    outputs = {
        "probabilities": _tensor_info("DT_FLOAT", [-1, len(model.manifest.class_names)], "p:0"),
        "embedding": _tensor_info("DT_FLOAT", [-1, dim], "latent:0"),
        "reconstruction": _tensor_info("DT_FLOAT", [-1, side, side], "reconstruction:0"),
        "reconstruction_error": _tensor_info("DT_FLOAT", [-1], "error:0"),
    }
    inputs = {
        "images": _tensor_info("DT_STRING", [-1], "images:0"),
        "pixels": _tensor_info("DT_UINT8", [-1, side, side], "pixels:0"),
    }
    signature_def = {
        name: {
            "inputs": inputs,
            "outputs": {o.value: outputs[o.value] for o in outs},
            "method_name": "tensorflow/serving/predict",
        }
        for name, outs in SIGNATURES.items()
    }
    return {
        "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": {"signature_def": signature_def}},
    }


@router.get("/models/{name:segment}", summary="Model status")
@router.get(
    "/models/{name:segment}/versions/{version:segment}",
    summary="Model version status",
    dependencies=VERSIONED,
)
async def status(model: VersionedModel, request: Request, registry: RegistryDep) -> dict[str, Any]:
    named = "version" in request.path_params
    return _status([model.version] if named else registry.served()[model.name])


@router.get("/models/{name:segment}/metadata", summary="Model metadata")
@router.get(
    "/models/{name:segment}/versions/{version:segment}/metadata",
    summary="Model version metadata",
    dependencies=VERSIONED,
)
async def metadata(model: VersionedModel) -> dict[str, Any]:
    return _metadata(model)


def _values(named: Any, max_images: int) -> list[Any]:
    """Input values, unwrapped from {"images": v} / {"pixels": v} where they are named."""
    values = named if isinstance(named, list) else None
    if isinstance(named, dict) and len(named) == 1 and next(iter(named)) in INPUT_NAMES:
        values = next(iter(named.values()))
    if not isinstance(values, list):
        raise BadRequest("inputs must be a list of values, or {'images' or 'pixels': [...]}")
    if len(values) > max_images:
        raise PayloadTooLarge(f"{len(values)} images; the limit is {max_images} (max_images)")
    return [_unwrap(v) for v in values]


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in INPUT_NAMES:
        return next(iter(value.values()))
    return value


async def _run(
    model: Model, values: list[Any], signature: str, request: Request, core: InferenceCore
) -> tuple[dict[str, np.ndarray], Inference]:
    """The signature's outputs by name, and the core's answer they came from."""
    sources = json_instances({"instances": values}, core.settings.max_images)
    count_images(request, len(sources))
    job = job_of(sources, core.image_options(model))
    wanted = SIGNATURES[signature]
    inference = await core.run(model, job, wanted)
    return {output.value: inference.value(output) for output in wanted}, inference


def _json(body: Any, inference: Inference) -> Response:
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json", headers=inference.metadata)


async def _predict(
    model: Model, body: PredictRequest, request: Request, core: InferenceCore
) -> Response:
    if (body.instances is None) == (body.inputs is None):
        raise BadRequest('send "instances" (row format) or "inputs" (columnar), not both')
    if body.signature_name not in SIGNATURES:
        raise BadRequest(f"unknown signature_name {body.signature_name!r}; use {list(SIGNATURES)}")
    row = body.instances is not None
    values = _values(body.instances if row else body.inputs, core.settings.max_images)
    named, inference = await _run(model, values, body.signature_name, request, core)
    single = next(iter(named.values())) if len(named) == 1 else None
    if not row:  # columnar: one value, or one per output name
        return _json({"outputs": named if single is None else single}, inference)
    if single is not None:
        return _json({"predictions": single}, inference)
    rows = [{name: value[i] for name, value in named.items()} for i in range(len(values))]
    return _json({"predictions": rows}, inference)


async def _classify(
    model: Model, body: ClassifyRequest, request: Request, core: InferenceCore
) -> Response:
    if SIGNATURES.get(body.signature_name) != (Output.PROBABILITIES,):
        raise BadRequest(f"signature {body.signature_name!r} does not classify")
    values = _values(body.examples, core.settings.max_images)
    named, inference = await _run(model, values, "classify", request, core)
    names = model.manifest.class_names
    # TensorFlow Serving's ClassificationResult: per example, [class, score] for every class.
    results = [[[names[i], float(p)] for i, p in enumerate(row)] for row in named["probabilities"]]
    return _json({"results": results}, inference)


def _body(model: type[BaseModel], raw: bytes) -> Any:
    """The JSON body, whatever its Content-Type (TF Serving's own examples send none)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": schema}}


@router.post(
    "/models/{name:segment}:predict",
    summary="Predict",
    openapi_extra=_documented(PredictRequest),
    dependencies=NAMED,
)
@router.post(
    "/models/{name:segment}/versions/{version:segment}:predict",
    summary="Predict with a version",
    openapi_extra=_documented(PredictRequest),
    dependencies=[*NAMED, *VERSIONED],
)
async def predict(request: Request) -> Response:
    model, core = model_in_path(request), request.app.state.core
    body = _body(PredictRequest, await request.body())
    return await _predict(model, body, request, core)


@router.post(
    "/models/{name:segment}:classify",
    summary="Classify",
    openapi_extra=_documented(ClassifyRequest),
    dependencies=NAMED,
)
@router.post(
    "/models/{name:segment}/versions/{version:segment}:classify",
    summary="Classify with a version",
    openapi_extra=_documented(ClassifyRequest),
    dependencies=[*NAMED, *VERSIONED],
)
async def classify(request: Request) -> Response:
    model, core = model_in_path(request), request.app.state.core
    body = _body(ClassifyRequest, await request.body())
    return await _classify(model, body, request, core)


DIRECT = (predict, classify)
"""The endpoints app/http/direct.py serves past FastAPI's request machinery."""
