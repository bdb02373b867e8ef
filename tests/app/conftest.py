"""A real uvicorn server on 127.0.0.1 serving the tiny repository, and helpers."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image

from app.main import create_app
from app.settings import Settings

START_TIMEOUT_S = 60


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "service never became ready"
        time.sleep(0.05)


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_like(seed: int) -> np.ndarray:
    """A 28x28 uint8 test image (light bar on dark ground) that differs per seed."""
    image = np.zeros((28, 28), dtype=np.uint8)
    row = 2 + (seed % 10) * 2
    image[row : row + 3, 4 + seed % 5 : 24] = 200 + seed % 50
    return image


def publish_version(source: Path, model_dir: Path, version: int, corrupt: bool = False) -> Path:
    """Copy the version directory `source` into `model_dir` as `version`, the way the exporter
    writes one: stage under a hidden name, then rename. `corrupt` spoils a weights file."""
    staging = model_dir / f".tmp-{version}"
    shutil.copytree(source, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["name"], manifest["version"] = model_dir.name, version
    (staging / "manifest.json").write_text(json.dumps(manifest))
    if corrupt:
        weights = next((staging / "encoder" / "variables").glob("*.data-*"))
        weights.write_bytes(b"\0" * weights.stat().st_size)
    final = model_dir / str(version)
    staging.rename(final)
    return final


def without_part(source: Path, model_dir: Path, version: int, part: str) -> Path:
    """Publish a copy of `source` without its optional `part` (index, ood, embedding, litert:
    each kept in a folder of its name): an older export."""
    path = publish_version(source, model_dir, version)
    manifest = json.loads((path / "manifest.json").read_text())
    shutil.rmtree(path / part)
    manifest[part] = None
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(part)}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def repo(model_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny repository, for tests that change it."""
    shutil.copytree(model_repo, tmp_path / "models")
    return tmp_path / "models"


class RaisingRunner:
    """A Runner whose every run raises `error` (a full queue, a bug, ...)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def run(self, *args: object) -> None:
        raise self.error

    def retire(self, model: object) -> None:
        """Nothing to release."""

    async def close(self) -> None:
        """Nothing to release."""


@pytest.fixture(scope="session")
def settings(model_repo: Path) -> Settings:
    return Settings(
        model_repository=model_repo, default_model="mnist", max_images=8, max_body_bytes=256 * 1024
    )


@pytest.fixture(scope="session")
def base_url(settings: Settings) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        wait_ready(client)
        yield client
