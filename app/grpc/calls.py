"""Per-call bookkeeping for gRPC, as app/http/access.py and app/http/auth.py do for HTTP:
API keys from the call's metadata, the error hierarchy as gRPC status codes, metrics and one
access line per call.

A protocol's servicer raises the service's errors (app/contract/errors.py) like a route does;
this interceptor maps them to status codes once. It says which model answered and how many
images came through `record()`, a per-call record (a context variable: the servicer runs in
the interceptor's task).
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from app.contract.errors import ServiceError, Unauthorized
from app.http.access import VALID_REQUEST_ID
from app.http.auth import is_valid
from app.http.metrics import Metrics

logger = logging.getLogger("latentserve.access")

# The mapping gRPC's own HTTP mapping suggests (grpc/doc/http-grpc-status-mapping.md, in
# reverse): a bad request of any kind is INVALID_ARGUMENT, too much is RESOURCE_EXHAUSTED
# (what grpc itself answers for an oversize message), a loading server UNAVAILABLE.
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
KEY_MISSING = "missing or invalid API key (metadata authorization: Bearer <key>, or x-api-key)"


@dataclass
class CallRecord:
    """What the servicer tells the access line about its call."""

    model: str | None = None
    version: int | None = None
    images: int | None = None


_CALL: contextvars.ContextVar[CallRecord] = contextvars.ContextVar("grpc_call")


def record() -> CallRecord:
    """This call's record (a throwaway one outside a call, e.g. in a unit test)."""
    try:
        return _CALL.get()
    except LookupError:
        return CallRecord()


def status_of(error: ServiceError) -> grpc.StatusCode:
    return STATUS.get(error.status_code, grpc.StatusCode.INTERNAL)


def message_of(error: ServiceError) -> str:
    return error.message if error.index is None else f"{error.message} (input {error.index})"


def _given_key(metadata: dict[str, str | bytes]) -> str | None:
    bearer = metadata.get("authorization")
    if isinstance(bearer, str) and bearer.lower().startswith("bearer "):
        return bearer[len("bearer ") :].strip()
    key = metadata.get("x-api-key")
    return key if isinstance(key, str) else None


def _request_id(metadata: dict[str, Any]) -> str:
    """The client's x-request-id when it is short and printable, else a new one (as HTTP)."""
    given = metadata.get("x-request-id")
    if isinstance(given, str) and VALID_REQUEST_ID.fullmatch(given.encode()):
        return given
    return uuid.uuid4().hex


Behaviour = Callable[[Any, aio.ServicerContext], Awaitable[Any]]


class CallInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every unary call of the services: auth (except `public` methods), errors, metrics,
    the access line."""

    def __init__(self, metrics: Metrics, key_digests: list[bytes], public: set[str]) -> None:
        self.metrics = metrics
        self.key_digests = key_digests
        self.public = public
        # grpc asks for a method's handler on every call; the wrapped one is made once.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        if (wrapped := self._wrapped.get(method)) is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # an unknown method: grpc answers UNIMPLEMENTED
        needs_key = bool(self.key_digests) and method.rsplit("/", 1)[-1] not in self.public
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._observed(handler.unary_unary, method, needs_key),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = wrapped
        return wrapped

    def _observed(self, behaviour: Behaviour, method: str, needs_key: bool) -> Behaviour:
        async def observed(request: Any, context: aio.ServicerContext) -> Any:
            started = time.perf_counter()
            metadata = dict(context.invocation_metadata() or ())
            request_id = _request_id(metadata)
            call, status = CallRecord(), grpc.StatusCode.OK
            token = _CALL.set(call)
            try:
                if needs_key:
                    given = _given_key(metadata)
                    if not given or not is_valid(given, self.key_digests):
                        raise Unauthorized(KEY_MISSING)
                return await behaviour(request, context)
            except ServiceError as error:
                status = status_of(error)
                if status == grpc.StatusCode.INTERNAL:
                    logger.error("internal error in %s: %s", method, error.message)
                await context.abort(status, message_of(error))
            except aio.AbortError:
                raise
            except Exception:
                status = grpc.StatusCode.INTERNAL
                logger.exception("internal error in %s", method)
                await context.abort(status, "internal error")
            finally:
                _CALL.reset(token)
                self._account(method, call, status, request_id, time.perf_counter() - started)

        return observed

    def _account(
        self,
        method: str,
        call: CallRecord,
        status: grpc.StatusCode,
        request_id: str,
        latency: float,
    ) -> None:
        model, version = call.model or "", "" if call.version is None else str(call.version)
        self.metrics.requests.labels(method, model, version, status.name).inc()
        self.metrics.latency.labels(method).observe(latency)
        fields = {
            "request_id": request_id,
            "method": "GRPC",
            "endpoint": method,
            "model": call.model,
            "version": call.version,
            "images": call.images,
            "status": status.name,
            "latency_ms": round(latency * 1000, 3),
        }
        logger.info(
            "%s %s %s model=%s version=%s images=%s %.1fms",
            request_id,
            method,
            status.name,
            model or "-",
            version or "-",
            call.images,
            latency * 1000,
            extra={"fields": fields},
        )
