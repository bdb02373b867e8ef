"""The error hierarchy (app/contract/errors.py) rendered once, in the shape of the protocol whose
URL was asked for:

    native API:     {"error": {"type": "invalid_image", "message": "...", "index": 3}}
    /v2 (OIP V2),
    /v1 (TF Serving): {"error": "<message> (input 3)"}

`index` names the offending image (0-based, request order) where there is one. The same status
code for the same condition on every protocol; every answer under a protocol's prefix in its
shape, whether it comes from a route, an unmatched URL, a middleware (body limits) or a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.contract.errors import BadRequest, ServiceError

logger = logging.getLogger(__name__)

PLAIN_PREFIXES = ("/v1/", "/v2/")
"""URL prefixes of the protocols whose errors are {"error": "<message>"}."""
HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


def error_body(error_type: str, message: str, index: int | None = None) -> dict[str, object]:
    detail: dict[str, object] = {"type": error_type, "message": message}
    if index is not None:
        detail["index"] = index
    return {"error": detail}


def is_plain(path: str) -> bool:
    return path == "/v2" or path.startswith(PLAIN_PREFIXES)


def render(error: ServiceError, path: str) -> JSONResponse:
    """The error as the protocol that `path` belongs to answers errors."""
    return _answer(
        path, error.status_code, error.error_type, error.message, error.index, error.headers
    )


def _answer(
    path: str,
    status: int,
    error_type: str,
    message: str,
    index: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if is_plain(path):
        where = "" if index is None else f" (input {index})"
        body: dict[str, object] = {"error": message + where}
    else:
        body = error_body(error_type, message, index)
    return JSONResponse(body, status_code=status, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return render(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # an unmatched URL, a method not allowed
    kind = HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None  # Allow, on a 405
    return _answer(request.url.path, exc.status_code, kind, str(exc.detail), headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """The first problem FastAPI found with a request's parameters, where it is."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Parameter validation (e.g. top_k=abc, a version that is not a number): 400."""
    assert isinstance(exc, RequestValidationError)
    return render(BadRequest(validation_message(exc)), request.url.path)


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    """The client hung up mid-body: nobody will read this, but it is no server error."""
    error = BadRequest("client disconnected before the body was complete")
    return render(error, request.url.path)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return render(ServiceError("internal error"), request.url.path)


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]
HANDLERS: dict[type[Exception], Handler] = {
    ServiceError: _service_error,
    StarletteHTTPException: _http_error,
    RequestValidationError: _validation_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)


async def error_response(request: Request, exc: Exception) -> JSONResponse:
    """What the handlers above answer for `exc` (the most specific class wins, as in
    Starlette), for code that runs outside FastAPI's exception middleware: the direct routes.
    An unexpected error is logged with its traceback here, as Starlette's server-error
    middleware has uvicorn log it."""
    kind = next(k for k in type(exc).__mro__ if k in HANDLERS)
    if kind is Exception:
        logger.error("unexpected error serving %s", request.url.path, exc_info=exc)
    return await HANDLERS[kind](request, exc)
