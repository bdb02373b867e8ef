"""Every protocol answers exactly as recorded (tests/app/golden.py): the same status, headers
and body bytes for a fixed set of requests to the shipped models, answers and errors alike."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import serve, wait_ready
from tests.app.golden import ANSWERS, machine, replay

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def replayed() -> Iterator[list[dict[str, Any]]]:
    settings = Settings(model_repository=ROOT / "models", reload_interval_s=0)
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        yield replay(client)


def close(recorded: Any, now: Any) -> bool:
    """Equal, numbers to TOLERANCE (relative), everything else exactly."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        return recorded.keys() == now.keys() and all(close(recorded[k], now[k]) for k in recorded)
    if isinstance(recorded, list) and isinstance(now, list):
        return len(recorded) == len(now) and all(map(close, recorded, now))
    if isinstance(recorded, float) or isinstance(now, float):
        return bool(np.isclose(recorded, now, rtol=TOLERANCE, atol=TOLERANCE))
    return bool(recorded == now)


def test_every_recorded_request_is_answered_as_recorded(replayed: list[dict[str, Any]]) -> None:
    golden = json.loads(ANSWERS.read_text())
    exact = golden["machine"] == machine()
    recorded = golden["answers"]
    assert [a["request"] for a in replayed] == [a["request"] for a in recorded]
    for then, now in zip(recorded, replayed, strict=True):
        where = then["request"]
        assert now["status"] == then["status"], where
        assert now["headers"].keys() == then["headers"].keys(), where
        body_then, body_now = base64.b64decode(then["body"]), base64.b64decode(now["body"])
        if exact:
            assert now["headers"] == then["headers"], where
            assert body_now == body_then, where
            continue
        # Another CPU: TensorFlow's kernels may round differently; the shape of every answer,
        # and every number to 1e-5, must still hold.
        kind = then["headers"].get("content-type", "")
        if kind.startswith("application/json"):
            assert close(json.loads(body_then), json.loads(body_now)), where
        elif kind == "application/x-npy":
            np.testing.assert_allclose(
                np.load(io.BytesIO(body_now)), np.load(io.BytesIO(body_then)), rtol=1e-4
            )
        else:
            assert len(body_now) == len(body_then) or kind == "image/png", where


def test_the_recording_covers_every_protocol_and_its_errors() -> None:
    answers = json.loads(ANSWERS.read_text())["answers"]
    paths = [a["request"].split()[1] for a in answers]
    assert any(p.startswith("/v2/") for p in paths) and any(p.startswith("/v1/") for p in paths)
    assert {a["status"] for a in answers} >= {200, 400, 404, 415, 422}
