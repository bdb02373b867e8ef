"""The error hierarchy (app/contract/errors.py), rendered by one handler into one JSON shape.

    {"error": {"type": "invalid_image", "message": "...", "index": 3}}

`index` names the offending image (0-based, request order) where there is one.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.contract.errors import BadRequest, ServiceError


def error_body(error_type: str, message: str, index: int | None = None) -> dict[str, object]:
    detail: dict[str, object] = {"type": error_type, "message": message}
    if index is not None:
        detail["index"] = index
    return {"error": detail}


def _render(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        error_body(error.error_type, error.message, error.index),
        status_code=error.status_code,
        headers=error.headers,
    )


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return _render(exc)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404 route, 405 method) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def validation_message(exc: RequestValidationError) -> str:
    """The first problem FastAPI found with a request's parameters, where it is."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """Query-parameter validation (e.g. top_k=abc) is a malformed request: 400."""
    assert isinstance(exc, RequestValidationError)
    return _render(BadRequest(validation_message(exc)))


async def _client_gone(_: Request, exc: Exception) -> JSONResponse:
    """The client hung up mid-body: nobody will read this, but it is no server error."""
    return _render(BadRequest("client disconnected before the body was complete"))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return _render(ServiceError("internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
