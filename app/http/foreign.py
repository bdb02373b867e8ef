"""Routes that speak another server's protocol (Open Inference Protocol V2, TensorFlow
Serving's REST API): the same errors as the native API, in that protocol's shape.

Both protocols answer errors as `{"error": "<message>"}`; a route of this class renders every
ServiceError (and a malformed request) that way, with the same status code and headers the
native API would send. Everything below the route is the native code path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.contract.errors import BadRequest, ServiceError
from app.core.jobs import Model
from app.http.dependencies import RegistryDep
from app.http.errors import validation_message


def plain_error(error: ServiceError) -> JSONResponse:
    message = error.message if error.index is None else f"{error.message} (input {error.index})"
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


class ForeignRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_plainly(request: Request) -> Response:
            try:
                return await handle(request)
            except ServiceError as err:
                return plain_error(err)
            except RequestValidationError as err:
                return plain_error(BadRequest(validation_message(err)))
            except ClientDisconnect:
                return plain_error(BadRequest("client disconnected before the body was complete"))

        return handle_plainly


async def versioned_model(name: str, request: Request, registry: RegistryDep) -> Model:
    """The model a foreign route's path names, at the version it names, if it names one (the
    same handler serves /models/{name}/... and /models/{name}/versions/{version}/...)."""
    version = request.path_params.get("version")
    if version is None:
        return registry.get(name, None)
    if not (str(version).isascii() and str(version).isdigit()) or int(version) < 1:
        raise BadRequest(f"path.version: {version!r} is not a version number (1 or more)")
    return registry.get(name, int(version))


VersionedModel = Annotated[Model, Depends(versioned_model)]


async def version_in_path(version: Annotated[int, Path(ge=1)]) -> None:
    """Declares (and validates) the {version} of a versioned path, for the OpenAPI document."""


VERSIONED = [Depends(version_in_path)]
