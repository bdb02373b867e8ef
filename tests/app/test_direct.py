"""The direct routes (app/http/direct.py): the inference endpoints served past FastAPI's
request machinery, with the same keys, errors, CORS and access lines, through a real server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, APIRouter
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.direct import DirectRoutes
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import digit_like, png_bytes, serve, wait_ready

PNG = png_bytes(digit_like(3))
INSTANCES = {"instances": [digit_like(1).tolist()]}
V2_BODY = {
    "inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                "data": digit_like(2).ravel().tolist()}]
}  # fmt: skip
TF_PREDICT = {"instances": [{"b64": base64.b64encode(PNG).decode()}]}
TF_CLASSIFY = {"examples": [{"b64": base64.b64encode(PNG).decode()}]}
# (path, request keyword arguments): one request to every direct route
DIRECT_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/classify", {"files": {"file": ("a.png", PNG, "image/png")}}),
    ("/embed", {"json": INSTANCES}),
    ("/reconstruct", {"content": PNG, "headers": {"content-type": "image/png"}}),
    ("/similar?model=mnist", {"json": INSTANCES}),
    ("/v2/models/mnist/infer", {"json": V2_BODY}),
    ("/v2/models/mnist/versions/1/infer", {"json": V2_BODY}),
    ("/v1/models/mnist:predict", {"json": TF_PREDICT}),
    ("/v1/models/mnist/versions/1:classify", {"json": TF_CLASSIFY}),
]


class CountingMiddleware:
    """A user middleware inside FastAPI's stack: it sees only what the direct routes pass on."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def secured(settings: Settings) -> Iterator[tuple[str, list[str]]]:
    secure = Settings(
        model_repository=settings.model_repository,
        default_model="mnist",
        api_keys="k-1",  # type: ignore[arg-type]  # parsed like the env var
        cors_origins="https://app.example",  # type: ignore[arg-type]
    )
    app, seen = create_app(secure), list[str]()
    app.add_middleware(CountingMiddleware, seen=seen)
    with serve(app) as url:
        yield url, seen


def _post(client: httpx.Client, path: str, args: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post(path, **{**args, "headers": {**args.get("headers", {}), **headers}})


@pytest.mark.parametrize(
    ("path", "request_args"), DIRECT_REQUESTS, ids=[path for path, _ in DIRECT_REQUESTS]
)
def test_each_inference_route_is_served_directly_behind_its_keys(
    secured: tuple[str, list[str]], path: str, request_args: dict[str, Any]
) -> None:
    url, seen = secured
    with httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        seen.clear()
        refused = _post(client, path, request_args)
        answered = _post(client, path, request_args, **{"x-api-key": "k-1"})
        origin = {"origin": "https://app.example", "authorization": "Bearer k-1"}
        allowed = _post(client, path, request_args, **origin)
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == "Bearer"
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-request-id"]
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert seen == []  # FastAPI's stack never saw them
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/v2/models/mnist", headers={"x-api-key": "k-1"})
    assert seen == ["/v2/models/mnist"]  # everything else still goes through it


def test_errors_keep_their_protocols_shapes(client: httpx.Client) -> None:
    native = client.post("/classify?top_k=abc", json=INSTANCES)
    assert native.status_code == 400
    assert native.json()["error"]["message"].startswith("query.top_k")
    unknown = client.post("/v2/models/nope/infer", json=V2_BODY)
    assert unknown.status_code == 404 and isinstance(unknown.json()["error"], str)
    bad_version = client.post("/v1/models/mnist/versions/x:predict", json=TF_PREDICT)
    assert bad_version.status_code == 400
    assert "path.version" in bad_version.json()["error"]


async def _takes_more(request: Request, extra: int) -> Response:
    return Response()


async def _needs_something(request: Request) -> Response:
    return Response()


async def _something() -> None:
    """A dependency the direct routes cannot run."""


def test_routes_it_cannot_serve_are_refused_when_the_app_is_built() -> None:
    router = APIRouter()
    router.post("/a")(_takes_more)
    router.post("/b", dependencies=[Depends(_something)])(_needs_something)
    first, second = (r for r in router.routes if isinstance(r, APIRoute))
    with pytest.raises(ValueError, match="takes \\(request\\)"):
        DirectRoutes(FastAPI(), [first], [])
    with pytest.raises(ValueError, match="cannot run"):
        DirectRoutes(FastAPI(), [second], [])
    assert DirectRoutes(FastAPI(), [second], [], documentation_only=[_something]).routes
