"""Metadata, health and metrics routes: what is served, and whether it is ready."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.contract.errors import NotReady, VersionNotFound
from app.http.dependencies import RegistryDep, SettingsDep
from app.http.openapi import ERRORS
from app.models.registry import ModelRegistry
from app.protocols.native import render as results
from app.protocols.native.schemas import Health, ModelInfo, ModelList, VersionInfo
from app.settings import Settings

router = APIRouter()  # behind API keys when they are configured
public_router = APIRouter()  # health probes stay open


def _model_info(registry: ModelRegistry, settings: Settings, name: str) -> ModelInfo:
    return results.model_info(
        list(registry.versions(name).values()), settings, name == registry.default_name
    )


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep, settings: SettingsDep) -> ModelList:
    return ModelList(models=[_model_info(registry, settings, n) for n in registry.names()])


@router.get("/models/{name}", response_model=ModelInfo, responses={404: ERRORS[404]})
async def get_model(name: str, registry: RegistryDep, settings: SettingsDep) -> ModelInfo:
    return _model_info(registry, settings, name)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=VersionInfo,
    responses={400: ERRORS[400], 404: ERRORS[404]},
)
async def get_version(
    name: str, version: Annotated[int, Path(ge=1)], registry: RegistryDep
) -> VersionInfo:
    versions = registry.versions(name)
    if version not in versions:
        raise VersionNotFound(
            f"model {name!r} has no served version {version}; served: {list(versions)}"
        )
    return results.version_info(versions[version])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition of this worker's metrics."""
    registry = request.app.state.metrics.registry
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@public_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering (says nothing about the models)."""
    return Health(status="alive")


@public_router.get("/readyz", response_model=Health, responses={503: ERRORS[503]})
async def readyz(registry: RegistryDep) -> Health:
    """200 once every served version is loaded and has answered a warm-up inference."""
    if not registry.ready:
        raise NotReady(registry.error or "models are still loading")
    served = registry.served()
    return Health(status="ready", models={n: v[0] for n, v in served.items()}, versions=served)
