"""The gRPC server: Open Inference Protocol V2 on its own port, in the same process and event
loop as HTTP, so a gRPC call goes through the same registry, core, batcher and limits.

Several uvicorn workers each start one; they share the port (SO_REUSEPORT, grpc's default on
Linux) and the kernel spreads connections over them, as it does for HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from grpc import aio

from app.core.service import InferenceCore
from app.grpc.calls import CallInterceptor
from app.http.metrics import Metrics
from app.models.registry import ModelRegistry
from app.protocols.oip.grpc_service import PUBLIC_METHODS, InferenceServicer
from app.protocols.oip.proto.inference_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from app.settings import Settings

logger = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
"""How long calls in progress may finish once the service stops (HTTP has drained by then)."""


@dataclass(frozen=True)
class GrpcParts:
    """What the gRPC server serves with: the HTTP app's own registry, core, metrics and keys."""

    settings: Settings
    registry: ModelRegistry
    core: InferenceCore
    metrics: Metrics
    key_digests: list[bytes]


async def start_grpc(parts: GrpcParts) -> aio.Server:
    """Listen on settings.host:settings.grpc_port; fails the start if the port is taken."""
    settings = parts.settings
    server = aio.server(
        interceptors=[CallInterceptor(parts.metrics, parts.key_digests, PUBLIC_METHODS)],
        options=[
            # A message over the HTTP body limit is refused by grpc before it is read
            # (RESOURCE_EXHAUSTED), as the HTTP middleware refuses the body with a 413.
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ],
    )
    add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(parts.registry, parts.core), server
    )
    address = f"{settings.host}:{settings.grpc_port}"
    server.add_insecure_port(address)  # raises RuntimeError when it cannot bind
    await server.start()
    logger.info("gRPC (Open Inference Protocol V2) listening on %s", address)
    return server


async def stop_grpc(server: aio.Server) -> None:
    await server.stop(grace=STOP_GRACE_S)
