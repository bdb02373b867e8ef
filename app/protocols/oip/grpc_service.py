"""Open Inference Protocol (V2) over gRPC: the six calls of `inference.GRPCInferenceService`
(KServe's grpc_predict_v2.proto, the part Triton's clients use), translated to and from the
same inference as REST (app/protocols/oip/inference.py).

Inputs come as `raw_input_contents` (what tritonclient sends) or as typed `contents`
(`bytes_contents` for BYTES images, `uint_contents` for UINT8 pixels); outputs go back as
`raw_output_contents`. Auth, status codes, metrics and the access line are the transport's
(app/grpc/calls.py).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from google.protobuf.message import Message
from grpc import aio

from app import __version__
from app.contract.errors import BadRequest, InvalidImage, NotReady
from app.core.jobs import Model
from app.core.service import InferenceCore
from app.grpc.calls import record
from app.models.registry import ModelRegistry
from app.protocols.oip.inference import metadata, read_input, run
from app.protocols.oip.proto import inference_pb2 as pb
from app.protocols.oip.proto.inference_pb2_grpc import GRPCInferenceServiceServicer
from app.protocols.oip.tensors import InferenceRequest, RequestInput, RequestOutput, raw_bytes

PUBLIC_METHODS = {"ServerLive", "ServerReady", "ServerMetadata"}
"""Answered without an API key, as /v2, /v2/health/live and /v2/health/ready are."""
EXTENSIONS = ["classification"]


def _value(parameter: pb.InferParameter) -> Any:
    kind = parameter.WhichOneof("parameter_choice")
    return None if kind is None else getattr(parameter, kind)


def _parameters(parameters: Any) -> dict[str, Any] | None:
    return {name: _value(p) for name, p in parameters.items()} or None


def _contents(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes | None:
    """Typed contents as the raw layout: BYTES elements length-prefixed, UINT8 one byte each."""
    contents = tensor.contents
    if tensor.datatype == "BYTES" and contents.bytes_contents:
        return b"".join(struct.pack("<I", len(e)) + e for e in contents.bytes_contents)
    if tensor.datatype == "UINT8" and contents.uint_contents:
        values = np.asarray(contents.uint_contents, dtype=np.uint32)
        if values.max() > 255:
            raise InvalidImage(f"input {tensor.name!r}: UINT8 data must be whole numbers 0-255")
        return values.astype(np.uint8).tobytes()
    return None


def parse_infer(request: pb.ModelInferRequest) -> tuple[InferenceRequest, bytes]:
    """The request as REST's parser would have it: its JSON part, and the binary data.

    Built without pydantic's validation (5% of the loop's time under load): what REST's
    strict validation guarantees, the message's own types already do (names and datatypes are
    strings, shapes int64 lists, parameters a bool, int, float or string each)."""
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents holds {len(raws)} tensors for {len(request.inputs)} inputs"
        )
    if not request.inputs:
        raise BadRequest("invalid inference request: inputs: the request has no input")
    inputs, blobs = [], []
    for i, tensor in enumerate(request.inputs):
        parameters = _parameters(tensor.parameters) or {}
        raw = raws[i] if raws else _contents(tensor)
        if raw is not None:
            parameters["binary_data_size"] = len(raw)
            blobs.append(raw)
        inputs.append(
            RequestInput.model_construct(
                name=tensor.name,
                datatype=tensor.datatype,
                shape=list(tensor.shape),
                parameters=parameters or None,
                data=None,
            )
        )
    outputs = [
        RequestOutput.model_construct(name=o.name, parameters=_parameters(o.parameters))
        for o in request.outputs
    ]
    body = InferenceRequest.model_construct(
        id=request.id or None,
        parameters=_parameters(request.parameters),
        inputs=inputs,
        outputs=outputs or None,
    )
    return body, b"".join(blobs)


def _version(text: str) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise BadRequest(f"version: {text!r} is not a version number (1 or more)")
    return int(text)


def _trailing(context: aio.ServicerContext, extra: dict[str, str]) -> None:
    """The timing every answer carries (HTTP's X- headers), as trailing metadata."""
    context.set_trailing_metadata(tuple((k.lower(), v) for k, v in extra.items()))


class InferenceServicer(GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, registry: ModelRegistry, core: InferenceCore) -> None:
        self.registry = registry
        self.core = core

    def _model(self, name: str, version: str) -> Model:
        model = self.registry.get(name, _version(version))
        call = record()
        call.model, call.version = model.name, model.version
        return model

    async def ServerLive(self, request: Message, context: aio.ServicerContext) -> Message:  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Message, context: aio.ServicerContext) -> Message:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.registry.ready)

    async def ServerMetadata(self, request: Message, context: aio.ServicerContext) -> Message:  # noqa: N802
        return pb.ServerMetadataResponse(
            name="latentserve", version=__version__, extensions=EXTENSIONS
        )

    async def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: aio.ServicerContext
    ) -> Message:
        """ready false while the models load; NOT_FOUND for a model or version not served."""
        try:
            self._model(request.name, request.version)
        except NotReady:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: aio.ServicerContext
    ) -> Message:
        model = self._model(request.name, request.version)
        versions = [model.version] if request.version else self.registry.served()[model.name]
        described = metadata(model, versions)
        tensors = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=described["name"],
            versions=described["versions"],
            platform=described["platform"],
            inputs=[tensors(**t) for t in described["inputs"]],
            outputs=[tensors(**t) for t in described["outputs"]],
        )

    async def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: aio.ServicerContext
    ) -> Message:
        model = self._model(request.model_name, request.model_version)
        body, binary = parse_infer(request)
        images = read_input(body, binary, self.core)
        record().images = images.count
        answer = await run(model, body, images, self.core)
        response = pb.ModelInferResponse(
            model_name=model.name, model_version=str(model.version), id=request.id
        )
        for tensor in answer.tensors:
            output = response.outputs.add(
                name=tensor.name, datatype=tensor.datatype, shape=list(tensor.array.shape)
            )
            for key, value in (tensor.parameters or {}).items():
                output.parameters[key].double_param = value  # the int8 scale
            response.raw_output_contents.append(raw_bytes(tensor))
        _trailing(context, answer.inference.metadata)
        return response
