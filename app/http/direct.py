"""The inference endpoints served straight from ASGI, past FastAPI's per-request machinery.

Every POST that reaches an inference route used to pass a dozen layers before its handler:
Starlette's error and exception middlewares, FastAPI's exit-stack and telemetry middlewares,
three routers, the dependency solver (for two app-state lookups and the API key), and each
layer's wrapped `send`. On the no-model floor that was the largest single cost left in the
request path (docs/benchmarks.md, "Direct routes"). Here the same FastAPI routes are matched
once, by their own `matches`, and their endpoint is awaited with the request, its API key
checked and its errors rendered by the same code FastAPI's handlers use. OpenAPI still comes
from the routes, and any request this does not take (another method, another path) goes
down FastAPI's stack as before.

A direct endpoint takes only the Request and returns a Response: it reads its query and
path itself (`app.http.dependencies.parse_query`, `app.http.foreign.model_in_path`), so
FastAPI and this lane run the same code. The only route dependencies allowed are those
this lane is told are documentation only: declarations of path parameters the endpoint
validates itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.auth import check_api_key
from app.http.errors import error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Pure ASGI middleware: serves `routes` itself, passes everything else to `app`.

    `routes` are routes of the routers the app includes behind its API keys (their own
    APIRoute objects, whose paths carry the router's prefix), so each is key-checked here
    when keys are configured.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Iterable[APIRoute],
        api_key_digests: list[bytes],
        documentation_only: Iterable[Callable[..., object]] = (),
    ) -> None:
        self.app = app
        self.routes = list(routes)
        self.digests = api_key_digests
        for route in self.routes:
            _check_signature(route)
            needs = {depends.dependency for depends in route.dependencies}
            if needs - set(documentation_only):
                raise ValueError(f"{route.path}: dependencies a direct route cannot run: {needs}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)  # route (for the access line), path_params
                    await self._serve(route, Request(scope, receive), send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: APIRoute, request: Request, send: Send) -> None:
        endpoint: Endpoint = route.endpoint
        try:
            if self.digests:
                check_api_key(request.headers, self.digests)
            response = await endpoint(request)
        except Exception as exc:  # rendered as FastAPI's handlers render it
            response = await error_response(request, exc)
        await response(request.scope, request.receive, send)


def _check_signature(route: APIRoute) -> None:
    parameters = list(inspect.signature(route.endpoint).parameters)
    if parameters != ["request"]:
        raise ValueError(f"{route.path}: a direct endpoint takes (request), not {parameters}")
