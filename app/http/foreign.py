"""Path parameters of the protocols that name a model (and maybe a version) in the URL:
Open Inference Protocol V2 and TensorFlow Serving's REST API. Their errors are rendered in
their own shape by app/http/errors.py, by URL prefix."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from starlette.requests import Request

from app.contract.errors import BadRequest
from app.core.jobs import Model
from app.http.dependencies import RegistryDep


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
