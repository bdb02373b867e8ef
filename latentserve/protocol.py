"""The HTTP conversation with the service, without I/O: shared by Client and AsyncClient.

A call of the client becomes one or more requests (`Call`): inputs beyond the service's
`max_images` (or body size) are split into chunks, every chunk pinned to the same model
version. Responses become typed results; errors the exception registered for their type, with
the input index counted in the caller's sequence. Which answers are worth retrying (429, 503,
a lost connection) and how long to wait before the next attempt is decided here too.
"""

from __future__ import annotations

import base64
import io
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import numpy as np
from PIL import Image

from latentserve.errors import ERRORS, LatentServeError, ServiceUnavailable
from latentserve.results import (
    Classifications,
    ClassScore,
    Embeddings,
    Limits,
    ModelInfo,
    ModelRef,
    Neighbour,
    Neighbours,
    Prediction,
    Reconstruction,
    Reconstructions,
)

NPY = "application/x-npy"
BOUNDARY = "latentserve-7f3a9c2e5b"  # never inside a part: parts are sent whole, not scanned
RETRY_STATUSES = (429, 503)
RETRY_AFTER_CAP_S = 60.0
Part = TypeVar("Part")
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class Endpoint(Generic[Part, Answer]):
    """One image endpoint as the client speaks it: where it is, what to accept, how a chunk's
    answer is read (its rows and the version that made them) and how chunks join into one."""

    path: str
    read: Callable[[httpx.Response], tuple[Part, ModelRef]]
    join: Callable[[list[Part], ModelRef], Answer]
    accept: str | None = None


@dataclass(frozen=True)
class Call:
    """One request of a client call: its endpoint, parameters and body, and where its rows go."""

    path: str
    accept: str | None
    params: dict[str, Any]
    offset: int
    files: list[bytes] = field(default_factory=list)
    json: dict[str, Any] | None = None

    def request(self) -> dict[str, Any]:
        """Keyword arguments for httpx's request()."""
        headers = {"accept": self.accept} if self.accept else {}
        params = {k: v for k, v in self.params.items() if v is not None}
        request = {"method": "POST", "url": self.path, "params": params, "headers": headers}
        if self.json is not None:
            return {**request, "json": self.json}
        headers["content-type"] = f"multipart/form-data; boundary={BOUNDARY}"
        return {**request, "content": multipart(self.files)}


def multipart(files: list[bytes]) -> bytes:
    """The multipart body (parts named "file") as one buffer. httpx streams `files=` part by
    part: 256 parts went out in ~1,000 sendto() calls a request, and the threads of a bulk run
    spent their time handing the GIL over (6.2 million futex calls for 60,000 images under
    strace); one buffer goes out in a few writes (docs/benchmarks.md)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="%d"\r\n'
    parts = [
        (head % i).encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter; Retry-After, when sent, wins."""

    retries: int = 5
    base_s: float = 0.1
    cap_s: float = 5.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after", "")
            if after.replace(".", "", 1).isdigit():
                return min(float(after), RETRY_AFTER_CAP_S)
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


def should_retry(response: httpx.Response | None) -> bool:
    """None: the request never got an answer (connection refused, reset, timed out)."""
    return response is None or response.status_code in RETRY_STATUSES


class Attempts:
    """The retry loop's decisions, without its I/O (the same for the sync and async client):
    after each attempt, how long to wait before the next one, or None; then the outcome."""

    def __init__(self, policy: RetryPolicy, url: str, offset: int) -> None:
        self._policy, self._url, self._offset = policy, url, offset
        self._attempt = 0
        self._response: httpx.Response | None = None
        self._failure: Exception | None = None

    def after(self, response: httpx.Response | None, failure: Exception | None) -> float | None:
        self._response, self._failure = response, failure
        if not should_retry(response) or self._attempt == self._policy.retries:
            return None
        self._attempt += 1
        return self._policy.delay(self._attempt - 1, response)

    def outcome(self) -> httpx.Response:
        """The successful response, or the exception the last answer (or its absence) means."""
        response = self._response
        if response is None:
            raise ServiceUnavailable(
                f"{self._url} did not answer after {self._policy.retries} retries: {self._failure}"
            )
        if response.is_error:
            raise error_for(response, self._offset)
        return response


def error_for(response: httpx.Response, offset: int = 0) -> LatentServeError:
    """The exception for an error response; its index counted in the caller's inputs."""
    try:
        detail = response.json()["error"]
        kind, message, index = detail["type"], detail["message"], detail.get("index")
    except (ValueError, KeyError, TypeError):
        kind, message, index = "", response.text[:500] or response.reason_phrase, None
    cls = ERRORS.get(kind, LatentServeError)
    return cls(
        message,
        status=response.status_code,
        index=None if index is None else offset + index,
        request_id=response.headers.get("x-request-id"),
    )


def model_ref(response: httpx.Response, body: dict[str, Any] | None = None) -> ModelRef:
    if body is not None and "model" in body:
        return ModelRef(body["model"]["name"], int(body["model"]["version"]))
    return ModelRef(response.headers["x-model-name"], int(response.headers["x-model-version"]))


ENCODING_OF_DTYPE = {"int8": "int8", "uint8": "binary"}


def _vectors(response: httpx.Response) -> tuple[Embeddings, ModelRef]:
    """/embed answered as .npy: the rows in their encoding's dtype, the version (and an int8
    scale) in the headers."""
    vectors = np.load(io.BytesIO(response.content), allow_pickle=False)
    ref, scale = model_ref(response), response.headers.get("x-embedding-scale")
    encoding = ENCODING_OF_DTYPE.get(vectors.dtype.name, "float32")
    return Embeddings(vectors, ref, encoding, None if scale is None else float(scale)), ref


def _joined_vectors(parts: list[Embeddings], ref: ModelRef) -> Embeddings:
    if len(parts) == 1:
        return parts[0]  # no copy
    joined = np.concatenate([p.vectors for p in parts])
    return Embeddings(joined, ref, parts[0].encoding, parts[0].scale)


def embedding_rows(embeddings: np.ndarray) -> tuple[str, list[str]]:
    """Query embeddings for /similar as the service reads them: their encoding (by dtype:
    int8, uint8 packed bits, else float32) and each row's little-endian bytes in base64."""
    if embeddings.dtype == np.int8 or embeddings.dtype == np.uint8:
        encoding, rows = ENCODING_OF_DTYPE[embeddings.dtype.name], embeddings
    else:
        encoding, rows = "float32", np.asarray(embeddings, "<f4")
    return encoding, [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]


def _predictions(response: httpx.Response) -> tuple[list[Prediction], ModelRef]:
    body = response.json()
    return [prediction(p) for p in body["predictions"]], model_ref(response, body)


def _reconstructions(response: httpx.Response) -> tuple[list[Reconstruction], ModelRef]:
    body = response.json()
    return [reconstruction(r) for r in body["reconstructions"]], model_ref(response, body)


def _neighbours(response: httpx.Response) -> tuple[list[list[Neighbour]], ModelRef]:
    body = response.json()
    rows = [[neighbour(n) for n in row] for row in body["neighbours"]]
    return rows, model_ref(response, body)


Rows = TypeVar("Rows")


def _chained(parts: list[list[Rows]]) -> list[Rows]:
    return list(itertools.chain.from_iterable(parts))


EMBED: Endpoint[Embeddings, Embeddings] = Endpoint("/embed", _vectors, _joined_vectors, NPY)
CLASSIFY: Endpoint[list[Prediction], Classifications] = Endpoint(
    "/classify", _predictions, lambda parts, ref: Classifications(_chained(parts), ref)
)
RECONSTRUCT: Endpoint[list[Reconstruction], Reconstructions] = Endpoint(
    "/reconstruct", _reconstructions, lambda parts, ref: Reconstructions.of(_chained(parts), ref)
)
SIMILAR: Endpoint[list[list[Neighbour]], Neighbours] = Endpoint(
    "/similar", _neighbours, lambda parts, ref: Neighbours(_chained(parts), ref)
)


# Each reader takes the fields it knows: a newer service may add fields, and must not break
# the clients already deployed.


def _png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def reconstruction(item: dict[str, Any]) -> Reconstruction:
    return Reconstruction(
        image=_png(item["image_png"]),
        error=item["error"],
        ood_score=item.get("ood_score"),
        in_distribution=item.get("in_distribution"),
    )


def neighbour(item: dict[str, Any]) -> Neighbour:
    image = item.get("image_png")
    return Neighbour(
        id=item["id"],
        distance=item["distance"],
        label=item.get("label"),
        class_name=item.get("class_name"),
        image=None if image is None else _png(image),
    )


def prediction(item: dict[str, Any]) -> Prediction:
    top = item.get("top_k")
    return Prediction(
        label=item["label"],
        class_name=item["class_name"],
        confidence=item["confidence"],
        probabilities=np.asarray(item["probabilities"], np.float32),
        top_k=None
        if top is None
        else [ClassScore(t["label"], t["class_name"], t["confidence"]) for t in top],
        ood_score=item.get("ood_score"),
        in_distribution=item.get("in_distribution"),
    )


def model_info(item: dict[str, Any]) -> ModelInfo:
    limits = item["limits"]
    return ModelInfo(
        name=item["name"],
        version=item["version"],
        versions=[v["version"] for v in item["versions"]],
        latent_dim=item["latent_dim"],
        class_names=item["class_names"],
        has_index=item.get("index") is not None,
        limits=Limits(max_images=limits["max_images"], max_body_bytes=limits["max_body_bytes"]),
    )


def same_version(refs: list[ModelRef]) -> ModelRef:
    if len(set(refs)) > 1:  # cannot happen when pinned; a guard against mixing latent spaces
        raise LatentServeError(f"chunks were answered by different versions: {sorted(set(refs))}")
    return refs[0]
