"""Open Inference Protocol (V2) inference, whatever carries it (REST or gRPC).

A model takes one input, `images` (BYTES: encoded image files, [N] or [N, 1]) or `pixels`
(UINT8 [N, 28, 28] or [N, 28, 28, 1], fed to the model as they are), and answers the
outputs asked for, all by default: `embedding` FP32 [N, D], `probabilities` FP32 [N, C],
`label` INT64 [N], `reconstruction` FP32 [N, 28, 28], `reconstruction_error` FP32 [N] and,
for a version with an out-of-distribution calibration, `ood_score` FP32 [N]. The
classification extension (`classification` on `probabilities`) is supported. Both transports
parse into the same `InferenceRequest` (app/protocols/oip/tensors.py) and call `run` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.contract.embedding import ENCODINGS, Encoded, Encoding, check_request, encode
from app.contract.errors import BadRequest
from app.contract.repository import IMAGE_SIDE
from app.core.jobs import Job, Model
from app.core.service import Inference, InferenceCore, Output
from app.pipeline.uploads import job_of
from app.protocols.oip.tensors import (
    BYTES_INPUT,
    PIXELS_INPUT,
    Images,
    InferenceRequest,
    Tensor,
    read_images,
)


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


@dataclass(frozen=True)
class EmbeddingAsk:
    """The `embedding` output's parameters: `encoding` and `dimensions`, as on /embed."""

    encoding: Encoding = "float32"
    dimensions: int | None = None


@dataclass(frozen=True)
class Wanted:
    """What a request asks back: output names in order, which as binary (REST), class counts,
    and how the embedding is written."""

    names: list[str]
    binary: set[str]
    classes: dict[str, int]
    embedding: EmbeddingAsk = EmbeddingAsk()


@dataclass(frozen=True)
class Answer:
    tensors: list[Tensor]
    binary: set[str]
    inference: Inference


def wanted(body: InferenceRequest, model: Model) -> Wanted:
    """Requested outputs (all by default), those to send as binary, classification per output."""
    asked = body.outputs or []
    offered = outputs_of(model)
    names = [o.name for o in asked] or offered
    if unknown := [n for n in names if n not in offered]:
        raise BadRequest(f"unknown output {unknown[0]!r}; outputs are {offered}")
    binary_all = flag(body.parameters, "binary_data_output", False, "parameters")
    binary = {o.name for o in asked if flag(o.parameters, "binary_data", binary_all, o.name)}
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
    embedding = next((_embedding_ask(o.parameters) for o in asked if o.name == "embedding"), None)
    for output in asked:
        given = {"encoding", "dimensions"} & set(output.parameters or {})
        if given and output.name != "embedding":
            raise BadRequest(f"{sorted(given)[0]} applies to 'embedding', not {output.name!r}")
    return Wanted(names, binary, classes, embedding or EmbeddingAsk())


def _embedding_ask(parameters: dict[str, Any] | None) -> EmbeddingAsk:
    parameters = parameters or {}
    encoding = parameters.get("encoding", "float32")
    if encoding not in ENCODINGS:
        raise BadRequest(f"embedding: parameter 'encoding' is one of {list(ENCODINGS)}")
    dimensions = parameters.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise BadRequest("embedding: parameter 'dimensions' must be a whole number >= 1")
    return EmbeddingAsk(encoding, dimensions)


def flag(parameters: dict[str, Any] | None, name: str, default: bool, where: str) -> bool:
    """A boolean parameter: a JSON true or false, nothing read by its truthiness."""
    value = (parameters or {}).get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {name!r} must be true or false, not {value!r}")
    return value


def read_input(body: InferenceRequest, binary: bytes, core: InferenceCore) -> Images:
    return read_images(body, binary, core.settings.max_images)


async def run(model: Model, body: InferenceRequest, images: Images, core: InferenceCore) -> Answer:
    """The request's outputs as tensors, from one call to the core."""
    asked = wanted(body, model)
    if "embedding" in asked.names:  # refused before the model's work, not after
        ask = asked.embedding
        check_request(model.space, ask.encoding, ask.dimensions, model.manifest.latent_dim)
    if images.files is not None:
        job = job_of(images.files, core.image_options(model))
    else:
        job = Job.of(images.pixels)  # type: ignore[arg-type]
    inference = await core.run(model, job, [OUTPUTS[n].output for n in asked.names])
    tensors = [_tensor(n, inference, asked) for n in asked.names]
    return Answer(tensors, asked.binary, inference)


def _tensor(name: str, inference: Inference, asked: Wanted) -> Tensor:
    """An output tensor, from the core's typed answer."""
    if top := asked.classes.get(name):  # `wanted` allows classification on probabilities only
        return Tensor(name, "BYTES", _classification(inference.probabilities, top, inference.model))
    if name == "embedding":
        ask = asked.embedding
        return _embedding(
            encode(inference.embeddings, inference.model.space, ask.encoding, ask.dimensions)
        )
    spec = OUTPUTS[name]
    return Tensor(name, spec.datatype, inference.value(spec.output))


def _embedding(encoded: Encoded) -> Tensor:
    """FP32 [N, K]; base64: BYTES [N]; int8: INT8 [N, K] with its `scale`; binary: UINT8
    [N, K / 8], the packed sign bits."""
    if encoded.encoding == "base64":
        rows = np.array([r.encode() for r in encoded.base64_rows()], dtype=object)
        return Tensor("embedding", "BYTES", rows)
    datatype = {"float32": "FP32", "int8": "INT8", "binary": "UINT8"}[encoded.encoding]
    parameters = None if encoded.scale is None else {"scale": encoded.scale}
    return Tensor("embedding", datatype, encoded.values, parameters)


def _classification(probabilities: np.ndarray, top: int, model: Model) -> np.ndarray:
    """Triton's classification extension: the top classes as "score:index:label" strings."""
    names = model.manifest.class_names
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    rows = [
        [f"{row[i]:.6f}:{i}:{names[i]}".encode() for i in best]
        for row, best in zip(probabilities, order, strict=True)
    ]
    return np.array(rows, dtype=object)
