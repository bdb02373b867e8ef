"""Request ids and the one structured access line per request."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from app.logs import JsonFormatter
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import RaisingRunner, digit_like, serve, wait_ready


def test_request_id_is_echoed_or_made_up(client: httpx.Client) -> None:
    given = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32
    assert client.get("/nope").headers["x-request-id"]  # errors carry one too


def test_one_structured_line_per_request(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="latentserve.access"):
        response = client.post(
            "/classify?model=fashion-mnist",
            json={"instances": [digit_like(1).tolist(), digit_like(2).tolist()]},
            headers={"x-request-id": "req-42"},
        )
    assert response.status_code == 200
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "req-42"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["endpoint"] == "/classify"
    assert fields["model"] == "fashion-mnist"
    assert fields["version"] == 1
    assert fields["images"] == 2
    assert fields["status"] == 200
    assert fields["latency_ms"] > 0
    parsed = json.loads(JsonFormatter().format(lines[0]))
    assert parsed["request_id"] == "req-42"
    assert parsed["logger"] == "latentserve.access"


def test_a_500_carries_the_request_id_the_error_shape_and_an_access_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, runner=RaisingRunner(RuntimeError("bug in the runner")))  # type: ignore[arg-type]
    pixels = {"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8"}
    v2_body = {"inputs": [{**pixels, "data": digit_like(2).ravel().tolist()}]}
    with (
        serve(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        caplog.at_level(logging.INFO, logger="latentserve.access"),
    ):
        wait_ready(client)
        response = client.post(
            "/classify",
            json={"instances": [digit_like(1).tolist()]},
            headers={"x-request-id": "req-500"},
        )
        plain = client.post("/v2/models/mnist/infer", json=v2_body)
    assert plain.status_code == 500
    assert plain.json() == {"error": "internal error"}  # in V2's own error shape
    logged = [r for r in caplog.records if r.name == "app.http.errors"]
    assert len(logged) == 2  # each with its traceback
    assert all(r.exc_info and "bug in the runner" in str(r.exc_info[1]) for r in logged)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {"error": {"type": "internal_error", "message": "internal error"}}
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "req-500"]
    assert [line.fields["status"] for line in lines] == [500]  # type: ignore[attr-defined]
    assert "bug in the runner" not in response.text  # no internals leak to the client
