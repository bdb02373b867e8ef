"""Path parameters of the protocols that name a model (and maybe a version) in the URL:
Open Inference Protocol V2 and TensorFlow Serving's REST API. Their errors are rendered in
their own shape by app/http/errors.py, by URL prefix."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from starlette.requests import Request

from app.contract.errors import BadRequest
from app.core.jobs import Model
from app.models.registry import ModelRegistry


def model_in_path(request: Request) -> Model:
    """The model a foreign route's path names, at the version it names, if it names one (the
    same handler serves /models/{name}/... and /models/{name}/versions/{version}/...)."""
    registry: ModelRegistry = request.app.state.registry
    name, version = request.path_params["name"], request.path_params.get("version")
    if version is None:
        return registry.get(name, None)
    if not (str(version).isascii() and str(version).isdigit()) or int(version) < 1:
        raise BadRequest(f"path.version: {version!r} is not a version number (1 or more)")
    return registry.get(name, int(version))


async def versioned_model(name: str, request: Request) -> Model:
    """`model_in_path` as a dependency, for the GET routes (`name` declares the path's {name}
    in OpenAPI; model_in_path reads it, and the version, from the path)."""
    return model_in_path(request)


VersionedModel = Annotated[Model, Depends(versioned_model)]


async def name_in_path(name: Annotated[str, Path()]) -> None:
    """Declares the {name} of a path, for the OpenAPI document, where the endpoint reads it
    itself (`model_in_path`)."""


async def version_in_path(version: Annotated[int, Path(ge=1)]) -> None:
    """Declares (and validates) the {version} of a versioned path, for the OpenAPI document."""


NAMED = [Depends(name_in_path)]
VERSIONED = [Depends(version_in_path)]
DOCUMENTATION_ONLY = (name_in_path, version_in_path)
"""Dependencies that only declare path parameters: the direct routes skip them."""
