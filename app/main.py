"""App factory and lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.access import AccessMiddleware
from app.auth import key_digests, require_api_key
from app.errors import install_error_handlers
from app.inference import configure_threads, load_version
from app.limits import BodyLimitMiddleware
from app.logs import configure_logging
from app.metrics import Metrics
from app.registry import Loader, ModelRegistry
from app.routes import TIMING_HEADERS, public_router, router
from app.runner import Runner, make_runner
from app.schemas import InstancesRequest
from app.settings import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
Serve a convolutional autoencoder's latent space: **/embed** returns latent features,
**/reconstruct** the decoder's reconstruction, **/classify** a classifier head's prediction
on those latents. Each takes one or more 28x28-ish grayscale images as multipart parts named
`file`, as a raw `image/*` body, or as JSON `{"instances": [...]}`.
"""


async def _load_in_background(app: FastAPI) -> None:
    registry: ModelRegistry = app.state.registry
    try:
        await asyncio.to_thread(registry.load)
    except Exception as err:
        registry.error = f"model loading failed: {type(err).__name__}: {err}"
        logger.critical("%s; the service stays unready", registry.error)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_threads(settings.inference_threads)
    app.state.registry.plan()  # manifests and checksums: fails start-up right away
    loading = asyncio.create_task(_load_in_background(app))
    watching = None
    if settings.reload_interval_s:
        watching = asyncio.create_task(app.state.registry.watch(settings.reload_interval_s))
    yield
    if watching is not None:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    await loading  # never leave a loader thread running into interpreter shutdown
    await app.state.runner.close()


def _openapi_with_instances(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        # The JSON body form is parsed by hand (it shares routes with multipart and raw
        # images), so its schema is added to the components that IMAGE_BODY refers to.
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        instances = InstancesRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(instances.pop("$defs", {}))
        components["InstancesRequest"] = instances
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: Settings, loader: Loader = load_version, runner: Runner | None = None
) -> FastAPI:
    app = FastAPI(title="latentserve", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.api_key_digests = key_digests(settings.all_api_keys())
    app.state.metrics = Metrics()
    app.state.runner = runner or make_runner(settings, app.state.metrics)
    app.state.registry = ModelRegistry(settings, loader, on_retire=app.state.runner.retire)
    app.include_router(public_router)
    # Only a service with keys requires (and documents in OpenAPI) authentication.
    auth = [Depends(require_api_key)] if app.state.api_key_digests else []
    app.include_router(router, dependencies=auth)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Id"],
            expose_headers=[*TIMING_HEADERS, "X-Request-Id", "X-Reconstruction-Error"],
        )
    app.add_middleware(AccessMiddleware, metrics=app.state.metrics)  # outermost: sees all
    app.openapi = lambda: _openapi_with_instances(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory app.main:app_from_env` (runs in every worker)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
