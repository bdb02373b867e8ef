"""The same app as Ray Serve replicas (`pip install '.[ray]'`; deploy/ray/serve.yaml):

    serve run deploy/ray/serve.yaml          # or: serve deploy deploy/ray/serve.yaml

Each replica builds the app with the factory (`create_app`, settings from the LATENTSERVE_*
variables of the replica's runtime_env: the model repository must be a path every node can
read), and Ray runs its lifespan, so models load in the background as they do under uvicorn.
Ray takes a replica for healthy only after its first health check passes, and that check
waits until every served version is loaded and warm: no request reaches a replica still
loading, and one whose loading failed is replaced. Later checks fail if the registry reports
an error. Ray's own proxy speaks HTTP in front of the replicas, so the replicas' own gRPC
server is off unless the runtime_env turns it on.
"""

from __future__ import annotations

import asyncio
import logging
import os

from fastapi import FastAPI
from ray import serve

from app.main import create_app
from app.models.registry import ModelRegistry
from app.settings import Settings

logger = logging.getLogger(__name__)

LOADING_POLL_S = 0.1


def build_app() -> FastAPI:
    """The ASGI app of one replica (Ray calls it in the replica's process)."""
    os.environ.setdefault("LATENTSERVE_GRPC_PORT", "0")
    return create_app(Settings())  # Ray configures the replica's logging


@serve.deployment
@serve.ingress(build_app)
class LatentServe:
    """One replica: the app, and its health as Ray asks for it."""

    app: FastAPI  # set by serve.ingress's wrapper

    async def check_health(self) -> None:
        registry: ModelRegistry = self.app.state.registry
        while not registry.ready:  # the first check: Ray routes to the replica once it passes
            if registry.error:
                raise RuntimeError(registry.error)
            await asyncio.sleep(LOADING_POLL_S)
        if registry.error:
            raise RuntimeError(registry.error)


deployment = LatentServe.bind()  # type: ignore[attr-defined]
