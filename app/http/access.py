"""Per-request bookkeeping in one pure ASGI middleware: request id, metrics, one log line.

The request id is taken from the client's `X-Request-Id` (when it is short and printable)
or made up, and echoed in the response. The access line carries request id, endpoint, model,
version, image count, status and latency as structured fields (JSON with LATENTSERVE_LOG_JSON).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.metrics import Metrics

logger = logging.getLogger("latentserve.access")

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and VALID_REQUEST_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


def count_images(request: Request, count: int) -> None:
    """How many images a request carried, for its access line (every protocol says it here)."""
    request.state.images = count


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        seen: dict[str, str] = {"status": "500"}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = str(message["status"])
                headers = dict(message.get("headers", []))
                seen["model"] = headers.get(b"x-model-name", b"").decode("latin-1")
                seen["version"] = headers.get(b"x-model-version", b"").decode("latin-1")
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            latency = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            model, version = seen.get("model", ""), seen.get("version", "")
            self.metrics.requests.labels(endpoint, model, version, seen["status"]).inc()
            self.metrics.latency.labels(endpoint).observe(latency)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "endpoint": endpoint,
                "model": model or None,
                "version": int(version) if version else None,
                "images": scope.get("state", {}).get("images"),
                "status": int(seen["status"]),
                "latency_ms": round(latency * 1000, 3),
            }
            logger.info(
                "%s %s %s model=%s version=%s images=%s %.1fms",
                request_id,
                endpoint,
                fields["status"],
                model or "-",
                version or "-",
                fields["images"],
                latency * 1000,
                extra={"fields": fields},
            )
