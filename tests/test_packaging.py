"""The base install is the client alone: no TensorFlow, no FastAPI; the extras bring them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = ("tensorflow", "tensorflow-cpu", "keras", "fastapi", "uvicorn", "usearch")


def test_the_base_install_is_light(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*install, str(ROOT)], check=True, capture_output=True, timeout=600)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.split()}
    assert "latentserve" in installed and "httpx" in installed and "numpy" in installed
    assert not installed & set(SERVER_ONLY), installed & set(SERVER_ONLY)
    script = "import latentserve, sys; from latentserve import Client; print(sorted(sys.modules))"
    modules = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True
    )
    assert "'tensorflow'" not in modules.stdout and "'app'" not in modules.stdout
    serve = subprocess.run(
        [str(venv / "bin" / "latentserve")], capture_output=True, text=True, check=False
    )
    assert serve.returncode == 2 and "latentserve[server]" in serve.stderr


def test_the_server_extra_holds_everything_the_service_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    server = " ".join(extras["server"]).lower()
    for needed in ("ai-edge-litert", "fastapi", "uvicorn", "usearch", "simplejpeg", "pydantic"):
        assert needed in server
    assert "tensorflow" not in server  # LiteRT serves without it; the image leaves it out
    assert "tensorflow-cpu" in " ".join(extras["tensorflow"]).lower()
    assert any("tensorflow" in extra for extra in extras["train"])
    base = " ".join(project["dependencies"]).lower()
    assert "tensorflow" not in base and "fastapi" not in base
