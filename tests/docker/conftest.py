"""Fixtures for the container tests: the image built by compose, real test images, a report.

These run only under `make docker-test` (scripts/docker-test.sh), which installs and starts a
Docker engine and sets LATENTSERVE_DOCKER_TEST=1; there a missing engine is a failure.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.docker.engine import ROOT, Project, docker, free_port
from training.datasets import load_dataset

ENABLED = os.environ.get("LATENTSERVE_DOCKER_TEST") == "1"
REPORT = ROOT / "bench" / "out" / "docker-test.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="needs a Docker engine: run `make docker-test`")
    for item in items:
        if "tests/docker/" in str(item.path):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def report() -> Iterator[dict]:
    """Figures the runs measured, written for docs/deployment.md to quote."""
    figures: dict = {}
    yield figures
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(figures, indent=2) + "\n")


@pytest.fixture(scope="session")
def image(report: dict) -> str:
    """latentserve:latest, built by `docker compose build` (BuildKit) from the Dockerfile."""
    docker("info")  # an engine must answer here
    start = time.monotonic()
    Project("latentserve-build", {}).compose("build", "latentserve", timeout=1200)
    report["build_seconds"] = round(time.monotonic() - start, 1)
    size = int(docker("image", "inspect", "-f", "{{.Size}}", "latentserve:latest"))
    report["image_bytes"] = size
    report["server_version"] = docker("version", "-f", "{{.Server.Version}}").strip()
    return "latentserve:latest"


def png(pixels: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.fixture(scope="session")
def fashion() -> tuple[list[bytes], list[str]]:
    """200 Fashion-MNIST test images as PNG files, and their class names."""
    data = load_dataset("fashion-mnist")
    files = [png(x) for x in data.x_test[:200]]
    return files, [data.class_names[int(y)] for y in data.y_test[:200]]


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest, image: str) -> Iterator[Project]:
    """A compose project with free ports on 127.0.0.1, torn down after its module."""
    profiles = tuple(getattr(request.module, "PROFILES", ()))
    env = {
        "LATENTSERVE_PUBLISH_PORT": str(free_port()),
        "LATENTSERVE_PUBLISH_GRPC_PORT": str(free_port()),
        "LATENTSERVE_PROXY_PORT": str(free_port()),
        "LATENTSERVE_PROXY_GRPC_PORT": str(free_port()),
    }
    name = f"latentserve-{Path(str(request.module.__file__)).stem.replace('_', '-')}"
    built = Project(name, env, profiles)
    try:
        yield built
    finally:
        built.down()
