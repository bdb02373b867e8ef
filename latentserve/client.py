"""`Client` and `AsyncClient`: embeddings, classes, reconstructions and neighbours of images.

    from latentserve import Client
    with Client("http://127.0.0.1:8000") as client:
        vectors = client.embed(["a.png", "b.png"], model="fashion-mnist").vectors

Inputs of any length are split into requests the service accepts (its `max_images` and body
limit, read from /models), sent with bounded concurrency, all pinned to one model version,
and the rows come back in input order. 429 and 503 answers and lost connections are retried
(Retry-After honoured, else capped exponential backoff with jitter); every other error raises
the exception for its type (latentserve.errors).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import httpx
import numpy as np

from latentserve.errors import LatentServeError, ModelNotFound
from latentserve.inputs import Images, chunks, image_files
from latentserve.protocol import (
    CLASSIFY,
    EMBED,
    RECONSTRUCT,
    SIMILAR,
    Attempts,
    Call,
    Endpoint,
    RetryPolicy,
    embedding_rows,
    model_info,
    same_version,
)
from latentserve.results import (
    Classifications,
    Embeddings,
    Limits,
    ModelInfo,
    ModelRef,
    Neighbours,
    Reconstructions,
)

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
Encoding = Literal["float32", "base64", "int8", "binary"]
ROW_OVERHEAD_BYTES = 4  # the quotes and comma around each base64 row in the JSON body
Part = TypeVar("Part")
Answer = TypeVar("Answer")


class _Base:
    def __init__(
        self, url: str, api_key: str | None, timeout: float, retries: int, concurrency: int
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._retry = RetryPolicy(retries)
        self.retried = 0
        """Requests sent again so far (429, 503, or no answer): what a failover cost."""
        self._retry_lock = threading.Lock()
        self._concurrency = max(1, concurrency)
        self._limits: Limits | None = None

    def _pick(self, models: list[dict[str, Any]], name: str | None) -> ModelInfo:
        """The named model (the service's default when None) out of a /models answer; the
        service's limits, which only change with its settings, are kept for later calls."""
        for item in models:
            if item["name"] == name or (name is None and item["default"]):
                info = model_info(item)
                self._limits = info.limits
                return info
        raise ModelNotFound(f"unknown model {name!r}; available: {[m['name'] for m in models]}")

    @staticmethod
    def _calls(
        endpoint: Endpoint[Any, Any], body: list[bytes] | np.ndarray, limits: Limits
    ) -> list[Call]:
        """Chunks of `body` (image files, or embeddings for /similar) the service accepts."""
        path, accept = endpoint.path, endpoint.accept
        if isinstance(body, np.ndarray):  # sent as base64 rows: a third of their JSON text
            encoding, rows = embedding_rows(body)
            sizes = [len(row) + ROW_OVERHEAD_BYTES for row in rows]
            slices = chunks(sizes, limits.max_images, limits.max_body_bytes)
            return [
                Call(path, accept, {"encoding": encoding}, s.start, json={"embeddings": rows[s]})
                for s in slices
            ]
        sizes = [len(file) for file in body]
        slices = chunks(sizes, limits.max_images, limits.max_body_bytes)
        return [Call(path, accept, {}, s.start, files=body[s]) for s in slices]

    @staticmethod
    def _needs_info(calls: list[Call], model: str | None, version: int | None) -> bool:
        """Whether the call must first ask /models: to name the default model, or to pin
        several chunks to the version served now (a reload mid-call could otherwise mix two
        latent spaces in one result)."""
        return model is None or (version is None and len(calls) > 1)

    @staticmethod
    def _pinned(calls: list[Call], model: str, version: int | None, **params: Any) -> list[Call]:
        fixed = {"model": model, "version": version, **params}
        return [
            Call(c.path, c.accept, {**c.params, **fixed}, c.offset, c.files, c.json) for c in calls
        ]

    @staticmethod
    def _result(endpoint: Endpoint[Part, Answer], parts: list[tuple[Part, ModelRef]]) -> Answer:
        ref = same_version([ref for _, ref in parts])
        return endpoint.join([part for part, _ in parts], ref)

    def _attempts(self, offset: int) -> Attempts:
        return Attempts(self._retry, self.url, offset)

    def _retrying(
        self, response: httpx.Response | None, failure: Exception | None, wait: float
    ) -> None:
        """Count and log a retry: `retried` is how many requests this client sent again."""
        with self._retry_lock:
            self.retried += 1
        why = f"HTTP {response.status_code}" if response is not None else repr(failure)
        logger.info("retrying in %.2f s: %s", wait, why)


class Client(_Base):
    """Blocking client; thread-safe; chunks of one call go out on `concurrency` threads."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retries, concurrency)
        self._http = httpx.Client(
            base_url=self.url, headers=self._headers, timeout=timeout, transport=transport
        )

    def _send(self, request: dict[str, Any], offset: int = 0) -> httpx.Response:
        attempts = self._attempts(offset)
        while True:
            try:
                response, failure = self._http.request(**request), None
            except httpx.TransportError as err:
                response, failure = None, err
            wait = attempts.after(response, failure)
            if wait is None:
                return attempts.outcome()
            self._retrying(response, failure, wait)
            time.sleep(wait)

    def models(self) -> list[ModelInfo]:
        body = self._send({"method": "GET", "url": "/models"}).json()
        return [model_info(item) for item in body["models"]]

    def model(self, name: str | None = None) -> ModelInfo:
        """A model's served versions, dimensions and limits (default model when None)."""
        body = self._send({"method": "GET", "url": "/models"}).json()["models"]
        return self._pick(body, name)

    def _call(
        self,
        endpoint: Endpoint[Part, Answer],
        body: list[bytes] | np.ndarray,
        model: str | None,
        version: int | None,
        **params: Any,
    ) -> Answer:
        calls = self._calls(endpoint, body, self._limits or self.model(model).limits)
        if self._needs_info(calls, model, version):
            info = self.model(model)
            model, version = info.name, version or (info.version if len(calls) > 1 else None)
        assert model is not None
        calls = self._pinned(calls, model, version, **params)

        def one(call: Call) -> tuple[Part, ModelRef]:
            return endpoint.read(self._send(call.request(), call.offset))

        if len(calls) == 1:
            return self._result(endpoint, [one(calls[0])])
        with ThreadPoolExecutor(min(self._concurrency, len(calls))) as pool:
            return self._result(endpoint, list(pool.map(one, calls)))

    def embed(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        normalize: bool = False,
        encoding: Encoding = "float32",
        dimensions: int | None = None,
    ) -> Embeddings:
        """Embeddings of `images`: the whole latent, or its first `dimensions` principal
        coordinates; as float32, int8 (with its scale) or binary codes (packed sign bits)."""
        return self._call(
            EMBED,
            image_files(images),
            model,
            version,
            normalize=normalize or None,
            encoding=_wire(encoding),
            dimensions=dimensions,
        )

    def classify(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        top_k: int | None = None,
        ood_threshold: float | None = None,
    ) -> Classifications:
        return self._call(
            CLASSIFY,
            image_files(images),
            model,
            version,
            top_k=top_k,
            ood_threshold=ood_threshold,
        )

    def reconstruct(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        ood_threshold: float | None = None,
    ) -> Reconstructions:
        return self._call(
            RECONSTRUCT, image_files(images), model, version, ood_threshold=ood_threshold
        )

    def similar(
        self,
        images: Images | None = None,
        *,
        embeddings: np.ndarray | None = None,
        k: int = 10,
        model: str | None = None,
        version: int | None = None,
        neighbour_images: bool = False,
        dimensions: int | None = None,
    ) -> Neighbours:
        """Nearest reference images of images, or of embeddings (n, dim) as embed returns them
        (float32, int8 or binary codes; `dimensions` when embed was asked for them); with
        `neighbour_images`, each neighbour's image when the version's index stores them."""
        body = _similar_body(images, embeddings)
        return self._call(
            SIMILAR,
            body,
            model,
            version,
            k=k,
            images=neighbour_images or None,
            dimensions=dimensions,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client; chunks of one call run concurrently, at most `concurrency` at a time."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        concurrency: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retries, concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def _send(self, request: dict[str, Any], offset: int = 0) -> httpx.Response:
        attempts = self._attempts(offset)
        while True:
            try:
                response, failure = await self._http.request(**request), None
            except httpx.TransportError as err:
                response, failure = None, err
            wait = attempts.after(response, failure)
            if wait is None:
                return attempts.outcome()
            self._retrying(response, failure, wait)
            await asyncio.sleep(wait)

    async def models(self) -> list[ModelInfo]:
        body = (await self._send({"method": "GET", "url": "/models"})).json()
        return [model_info(item) for item in body["models"]]

    async def model(self, name: str | None = None) -> ModelInfo:
        body = (await self._send({"method": "GET", "url": "/models"})).json()["models"]
        return self._pick(body, name)

    async def _call(
        self,
        endpoint: Endpoint[Part, Answer],
        body: list[bytes] | np.ndarray,
        model: str | None,
        version: int | None,
        **params: Any,
    ) -> Answer:
        calls = self._calls(endpoint, body, self._limits or (await self.model(model)).limits)
        if self._needs_info(calls, model, version):
            info = await self.model(model)
            model, version = info.name, version or (info.version if len(calls) > 1 else None)
        assert model is not None
        calls = self._pinned(calls, model, version, **params)
        gate = asyncio.Semaphore(self._concurrency)

        async def one(call: Call) -> tuple[Part, ModelRef]:
            async with gate:
                return endpoint.read(await self._send(call.request(), call.offset))

        return self._result(endpoint, list(await asyncio.gather(*(one(c) for c in calls))))

    async def embed(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        normalize: bool = False,
        encoding: Encoding = "float32",
        dimensions: int | None = None,
    ) -> Embeddings:
        return await self._call(
            EMBED,
            image_files(images),
            model,
            version,
            normalize=normalize or None,
            encoding=_wire(encoding),
            dimensions=dimensions,
        )

    async def classify(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        top_k: int | None = None,
        ood_threshold: float | None = None,
    ) -> Classifications:
        return await self._call(
            CLASSIFY,
            image_files(images),
            model,
            version,
            top_k=top_k,
            ood_threshold=ood_threshold,
        )

    async def reconstruct(
        self,
        images: Images,
        *,
        model: str | None = None,
        version: int | None = None,
        ood_threshold: float | None = None,
    ) -> Reconstructions:
        return await self._call(
            RECONSTRUCT, image_files(images), model, version, ood_threshold=ood_threshold
        )

    async def similar(
        self,
        images: Images | None = None,
        *,
        embeddings: np.ndarray | None = None,
        k: int = 10,
        model: str | None = None,
        version: int | None = None,
        neighbour_images: bool = False,
        dimensions: int | None = None,
    ) -> Neighbours:
        body = _similar_body(images, embeddings)
        return await self._call(
            SIMILAR,
            body,
            model,
            version,
            k=k,
            images=neighbour_images or None,
            dimensions=dimensions,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _wire(encoding: Encoding) -> str | None:
    """The service answers .npy (the client's format) in float32 for base64 too."""
    return None if encoding in ("float32", "base64") else encoding


def _similar_body(images: Images | None, embeddings: np.ndarray | None) -> list[bytes] | np.ndarray:
    if (images is None) == (embeddings is None):
        raise LatentServeError("pass images or embeddings, not both and not neither")
    if embeddings is not None:
        embeddings = np.atleast_2d(np.asarray(embeddings))
        if embeddings.dtype in (np.int8, np.uint8):
            return embeddings  # int8 values or packed binary codes, as embed returns them
        return np.asarray(embeddings, np.float32)
    assert images is not None
    return image_files(images)
