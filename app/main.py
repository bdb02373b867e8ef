"""App factory and lifespan.

Importing this module does not import TensorFlow: `app.models.inference` is imported when a service
with the default loader starts (lifespan), so tools and tests that bring their own loader, and
every other module of the app, stay free of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import ASGIApp

from app import __version__
from app.contract.repository import Manifest, RepositoryError
from app.core.jobs import Model, Runner
from app.core.service import TIMING_HEADERS, InferenceCore
from app.http.access import AccessMiddleware
from app.http.auth import key_digests, require_api_key
from app.http.demo import install_demo
from app.http.direct import DirectRoutes, Endpoint
from app.http.errors import install_error_handlers
from app.http.foreign import DOCUMENTATION_ONLY
from app.http.limits import BodyLimitMiddleware
from app.http.metrics import Metrics
from app.http.openapi import openapi_with_bodies
from app.logs import configure_logging
from app.models.loaded import limit_blas_threads
from app.models.registry import Loader, ModelRegistry
from app.pipeline.runner import make_runner
from app.pipeline.supervision import Supervised
from app.protocols.native import routes as native
from app.protocols.native.metadata import public_router
from app.protocols.native.metadata import router as metadata_router
from app.protocols.oip import routes as oip
from app.protocols.tfserving import routes as tfserving
from app.settings import Runtime, Settings

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


@dataclass(frozen=True)
class RuntimeLoader:
    """The default loader: a version through LiteRT (app.models.litert) when it has LiteRT
    graphs and `runtime` allows, through TensorFlow (app.models.inference, imported only then)
    otherwise; similarity graphs through the settings' graph cache."""

    runtime: Runtime
    threads: int
    graph_cache: Path

    def __call__(self, path: Path, manifest: Manifest) -> Model:
        from app.contract.similarity import GraphCache

        cache = GraphCache(self.graph_cache)
        if self.runtime == "litert" or (self.runtime == "auto" and manifest.litert):
            from app.models.litert import load_litert_version

            return load_litert_version(path, manifest, cache, self.threads)
        try:
            from app.models.inference import configure_threads, load_version
        except ModuleNotFoundError as err:  # the image and `latentserve[server]` leave it out
            raise RepositoryError(
                f"{path}: no LiteRT graphs, and TensorFlow is not installed ({err}); add the "
                f"graphs with `python -m training litert --model-dir {path}` where TensorFlow "
                "is, or install `latentserve[tensorflow]`"
            ) from None
        configure_threads(self.threads)  # before TensorFlow's first op; once is enough
        return load_version(path, manifest, cache)


async def _start_grpc(app: FastAPI) -> Any:
    """The gRPC server over this app's registry, core, metrics and keys (grpc is imported only
    when it is on)."""
    from app.grpc.server import GrpcParts, start_grpc

    state = app.state
    parts = GrpcParts(
        state.settings, state.registry, state.core, state.metrics, state.api_key_digests
    )
    return await start_grpc(parts)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if isinstance(app.state.loader, RuntimeLoader):
        limit_blas_threads(settings.inference_threads)
    app.state.registry.plan()  # manifests and checksums: fails start-up right away
    loading = asyncio.create_task(_load_in_background(app))
    watcher = Supervised(
        "model repository watcher",
        lambda: app.state.registry.watch(settings.reload_interval_s),
    )
    if settings.reload_interval_s:
        watcher.start()
    app.state.watcher = watcher
    grpc_server = await _start_grpc(app) if settings.grpc_port else None
    yield
    if grpc_server is not None:
        from app.grpc.server import stop_grpc

        await stop_grpc(grpc_server)
    await watcher.stop()
    await loading  # never leave a loader thread running into interpreter shutdown
    await app.state.runner.close()


def _direct_routes() -> list[APIRoute]:
    """The inference routes, native first (the most used), for app/http/direct.py."""
    protocols: list[tuple[APIRouter, tuple[Endpoint, ...]]] = [
        (native.router, native.DIRECT),
        (oip.router, oip.DIRECT),
        (tfserving.router, tfserving.DIRECT),
    ]
    return [
        route
        for router, endpoints in protocols
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint in endpoints
    ]


class LatentServe(FastAPI):
    """FastAPI with the service's own outer layers around Starlette's stack, outermost first:
    the access middleware (so every response, a 500 included, carries X-Request-Id and gets
    its access line), CORS when configured, the body limits, and the direct routes that
    serve the inference endpoints themselves (app/http/direct.py)."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        stack: ASGIApp = DirectRoutes(
            super().build_middleware_stack(),
            _direct_routes(),
            self.state.api_key_digests,
            documentation_only=DOCUMENTATION_ONLY,
        )
        stack = BodyLimitMiddleware(stack, max_body_bytes=settings.max_body_bytes)
        if settings.cors_origins:
            stack = CORSMiddleware(
                stack,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Id"],
                expose_headers=[*TIMING_HEADERS, "X-Request-Id", *native.RECONSTRUCTION_HEADERS],
            )
        return AccessMiddleware(stack, metrics=self.state.metrics)


def create_app(
    settings: Settings, loader: Loader | None = None, runner: Runner | None = None
) -> FastAPI:
    app = LatentServe(
        title="latentserve", version=__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.api_key_digests = key_digests(settings.all_api_keys())
    app.state.metrics = Metrics()
    app.state.runner = runner or make_runner(settings, app.state.metrics)
    app.state.core = InferenceCore(settings, app.state.runner)
    app.state.loader = loader or RuntimeLoader(
        settings.runtime, settings.inference_threads, settings.graph_cache
    )
    app.state.registry = ModelRegistry(
        settings, app.state.loader, on_retire=app.state.runner.retire
    )
    app.include_router(public_router)
    # Only a service with keys requires (and documents in OpenAPI) authentication.
    auth = [Depends(require_api_key)] if app.state.api_key_digests else []
    app.include_router(native.router, dependencies=auth)
    app.include_router(metadata_router, dependencies=auth)
    app.include_router(oip.public_router)
    app.include_router(oip.router, dependencies=auth)
    app.include_router(tfserving.router, dependencies=auth)
    if settings.demo:
        install_demo(app)
    install_error_handlers(app)
    app.openapi = lambda: openapi_with_bodies(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory app.main:app_from_env` (runs in every worker)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
