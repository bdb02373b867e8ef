"""latentserve against the servers people would otherwise use, in one run on one machine.

    .venv/bin/python bench/peers.py [--duration 10] [--rounds 3]     (also part of `make bench`)

Each peer serves the same exported SavedModels (bench/peer_servers/composed.py: encoder ->
head as one graph call, PNG decoded with Pillow) from its own virtualenv, which this makes
from the pinned bench/peer_servers/requirements-*.txt (PyPI) the first time. One worker each,
access logging as each ships, the same test images. Correctness first: every configuration
must give the class latentserve gives for 32 test images, or the run stops. Then every server
stays up while wrk loads one at a time, at 32 and at 1 connection, round after round, so the
machine's drift over the minutes weighs on all alike.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from harness import ROOT, Server, free_port, machine, multipart, run_wrk, sample_pngs, wrk_script
from PIL import Image

SERVERS = ROOT / "bench" / "peer_servers"
VENVS = ROOT / "bench" / "out" / "peers"
CHECK_IMAGES = 32
MULTIPART = "multipart/form-data; boundary=latentservebench"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Call:
    """One image as a configuration is sent it."""

    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Config:
    name: str
    venv: str | None
    """bench/out/peers/<venv> (made from requirements-<venv>.txt); None: latentserve's own."""
    command: list[str]
    """The first item is a program in the virtualenv's bin/."""
    ready_path: str
    call: Callable[[bytes], Call]
    label: Callable[[Any], int]
    """The class in a JSON answer."""
    env: dict[str, str] = field(default_factory=dict)
    port_flag: str = "--port"
    files: Callable[[Path, int], None] | None = None
    """Writes configuration files into the server's working directory, given its port."""


def multipart_call(path: str, field_name: str) -> Callable[[bytes], Call]:
    def call(png: bytes) -> Call:
        return Call(path, multipart([png], field_name), {"Content-Type": MULTIPART})

    return call


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def v1_b64(path: str) -> Callable[[bytes], Call]:
    def call(png: bytes) -> Call:
        return Call(path, json.dumps({"instances": [{"b64": b64(png)}]}).encode(), JSON)

    return call


def v2_b64(path: str) -> Callable[[bytes], Call]:
    def call(png: bytes) -> Call:
        tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "data": [b64(png)]}
        return Call(path, json.dumps({"inputs": [tensor]}).encode(), JSON)

    return call


def v2_pixels(path: str) -> Callable[[bytes], Call]:
    def call(png: bytes) -> Call:
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L")).ravel().tolist()
        tensor = {"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}
        return Call(path, json.dumps({"inputs": [tensor]}).encode(), JSON)

    return call


def v2_label(answer: Any) -> int:
    return int(np.argmax(answer["outputs"][0]["data"]))


def mlserver_files(batching: bool) -> Callable[[Path, int], None]:
    """MLServer reads its ports and the model from JSON files in the folder it starts in."""

    def write(folder: Path, port: int) -> None:
        settings = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 1,
        }
        model: dict[str, Any] = {
            "name": "fashion-mnist",
            "implementation": "mlserver_runtime.PeerRuntime",
        }
        if batching:
            model |= {"max_batch_size": 128, "max_batch_time": 0.002}
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / "model-settings.json").write_text(json.dumps(model))

    return write


def v1_label(answer: Any) -> int:
    return int(answer["predictions"][0]["label"])


def kserve(
    name: str, ready: str, call: Callable[[bytes], Call], label: Callable[[Any], int]
) -> Config:
    """KServe's model server (one process); its gRPC port must not collide with another's."""
    command = ["python", str(SERVERS / "kserve_model.py"), "--workers", "1"]
    command += ["--grpc_port", str(free_port())]
    return Config(name, "kserve", command, ready, call, label, port_flag="--http_port")


def mlserver(name: str, call: Callable[[bytes], Call], batching: bool) -> Config:
    """MLServer started in a folder of its own settings (ports, model, batching)."""
    return Config(
        name,
        "mlserver",
        ["mlserver", "start", "."],
        "/v2/models/fashion-mnist/ready",
        call,
        v2_label,
        port_flag="",
        files=mlserver_files(batching),
    )


def configs(model: str) -> list[Config]:
    v1 = "/v1/models/fashion-mnist:predict"
    v2 = "/v2/models/fashion-mnist/infer"
    v2_ready = "/v2/models/fashion-mnist/ready"
    uvicorn = ["python", "-m", "uvicorn", "--host", "127.0.0.1"]
    bentoml = ["bentoml", "serve", "bentoml_service:Classifier"]
    return [
        Config(
            "latentserve",
            None,
            [*uvicorn, "--factory", "app.main:app_from_env", "--no-access-log"],
            "/readyz",
            multipart_call("/classify", "file"),
            v1_label,  # latentserve answers in the same shape
            env={"LATENTSERVE_MODELS": model},
        ),
        Config(
            "plain FastAPI route",
            "fastapi",
            [*uvicorn, "fastapi_app:app"],
            "/docs",
            multipart_call("/classify", "file"),
            lambda answer: answer["label"],
        ),
        Config(
            "BentoML, no batching",
            "bentoml",
            bentoml,
            "/readyz",
            multipart_call("/classify", "images"),
            lambda answer: answer["label"],
        ),
        Config(
            "BentoML, adaptive batching",
            "bentoml",
            bentoml,
            "/readyz",
            multipart_call("/classify", "images"),
            lambda answer: answer[0]["label"],
            env={"PEER_BATCHING": "1"},
        ),
        kserve("KServe V1 (JSON, base64 PNG)", "/v1/models/fashion-mnist", v1_b64(v1), v1_label),
        kserve("KServe V2 (JSON, base64 PNG)", v2_ready, v2_b64(v2), v2_label),
        mlserver("MLServer, adaptive batching (base64 PNG)", v2_b64(v2), batching=True),
        mlserver("MLServer, no batching (base64 PNG)", v2_b64(v2), batching=False),
        mlserver("MLServer, adaptive batching (pixel tensor)", v2_pixels(v2), batching=True),
    ]


def virtualenv(name: str) -> Path:
    """bench/out/peers/<name>, (re)installed when its requirements file changes."""
    requirements = SERVERS / f"requirements-{name}.txt"
    venv = VENVS / name
    stamp = venv / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    print(f"making the {name} virtualenv ({requirements.name})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(digest)
    return venv


def versions(venv: Path) -> str:
    """The serving packages' installed versions, as the docs quote them."""
    code = (
        "import importlib.metadata as m\n"
        "for p in ('bentoml', 'kserve', 'mlserver', 'fastapi', 'uvicorn', 'tensorflow-cpu'):\n"
        "    try: print(p, m.version(p))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    python = venv / "bin" / "python"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return ", ".join(out.stdout.split("\n")[:-1])


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def start(config: Config, model_dir: Path, workdir: Path, logs: Path) -> Server:
    venv = virtualenv(config.venv) if config.venv else Path(sys.executable).parents[1]
    program, *rest = config.command
    port = free_port()
    cwd = ROOT if config.venv is None else workdir / slug(config.name)
    if config.venv is not None:
        cwd.mkdir(parents=True, exist_ok=True)
    if config.files:
        config.files(cwd, port)
    env = {
        "PEER_MODEL_DIR": str(model_dir),
        "PYTHONPATH": str(SERVERS),  # the peers' modules; they import nothing of latentserve
        "BENTOML_HOME": str(cwd / "bentoml-home"),
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **config.env,
    }
    return Server(
        [str(venv / "bin" / program), *rest],
        env,
        config.ready_path,
        logs / f"peer-{slug(config.name)}.log",
        cwd=cwd,
        port_flag=config.port_flag,
        port=port,
        ready_in_a_row=3,
    )


def check_labels(servers: dict[str, Server], by_name: dict[str, Config], pngs: list[bytes]) -> None:
    """Every configuration must answer latentserve's class for every test image."""
    answers: dict[str, list[int]] = {}
    for name, server in servers.items():
        labels = []
        for png in pngs:
            call = by_name[name].call(png)
            reply = httpx.post(server.url + call.path, content=call.body, headers=call.headers)
            reply.raise_for_status()
            labels.append(by_name[name].label(reply.json()))
        answers[name] = labels
    reference = answers["latentserve"]
    wrong = {name: labels for name, labels in answers.items() if labels != reference}
    if wrong:
        raise SystemExit(f"peers disagree with latentserve ({reference}): {wrong}")
    print(f"all {len(servers)} configurations agree on {len(pngs)} test images", flush=True)


def compare(model: str, duration: int, rounds: int, out: Path) -> dict[str, Any]:
    from app.contract.repository import latest_version

    model_dir, _ = latest_version(ROOT / "models", model)
    pngs = sample_pngs(model, CHECK_IMAGES)
    chosen = configs(model)
    by_name = {config.name: config for config in chosen}
    rows: list[dict[str, Any]] = []
    servers: dict[str, Server] = {}
    with ExitStack() as stack:
        for config in chosen:
            print(f"starting {config.name}", flush=True)
            server = start(config, model_dir, out / "peers-run", out / "logs")
            servers[config.name] = stack.enter_context(server)
        check_labels(servers, by_name, pngs)
        scripts = {}
        for config in chosen:
            call = config.call(pngs[0])
            scripts[config.name] = (call.path, wrk_script(out, call.body, call.headers))
        for name, (path, script) in scripts.items():  # warm-up: first-call paths, JIT caches
            run_wrk(servers[name].url + path, script, 8, 2)
        for round_ in range(rounds):
            for name, (path, script) in scripts.items():
                for conns in (32, 1):
                    cpu = servers[name].cpu_seconds()
                    result = run_wrk(servers[name].url + path, script, conns, duration)
                    result["server_cores"] = (servers[name].cpu_seconds() - cpu) / duration
                    rows.append({"name": name, "round": round_, "connections": conns, **result})
                    print(f"round {round_} {name:<44} c={conns:<3} {result}", flush=True)
    venvs = {config.venv for config in chosen if config.venv}
    return {
        "machine": machine(),
        "duration_s": duration,
        "rounds": rounds,
        "model": model,
        "rows": rows,
        "peak_rss_mb": {name: server.total_peak_mb for name, server in servers.items()},
        "processes": {name: server.process_count for name, server in servers.items()},
        "versions": {venv: versions(VENVS / venv) for venv in sorted(venvs)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    results = compare(args.model, args.duration, args.rounds, args.out)
    (args.out / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
