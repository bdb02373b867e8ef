"""Beyond one worker, measured on this machine in one run (docs/scaling.md):

    .venv/bin/python bench/cluster.py [--duration 10] [--rounds 2]

1. Serving `/classify` (one PNG at 32 connections, 64 PNGs at 8) from one uvicorn worker,
   from two (`LATENTSERVE_WORKERS=2`), and from Ray Serve with two replicas on a two-node
   Ray cluster (head and worker node as `ray start` processes on loopback, the repository's
   deploy/ray/serve.yaml with the proxy on the head), all with the `fashion-mnist` model,
   wrk for the load; rounds interleaved, median (range).
2. Bulk embedding of the 10,000 Fashion-MNIST test images: `latentserve embed` against the
   one-worker service, and `latentserve embed --engine ray` on the same two-node cluster
   (wall time of each command, start-up included).
Both nodes share this machine's 2 cores (so does wrk): the Ray figures show what the path
costs, not what a second machine would add. Writes out/cluster.json, prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Server, free_port, machine, multipart, run_wrk, sample_pngs, wrk_script

MODEL = "fashion-mnist"
BIN = Path(sys.executable).parent
LOGS = ROOT / "bench" / "out" / "logs"
ENV = {
    "LATENTSERVE_MODELS": MODEL,
    "LATENTSERVE_LOG_LEVEL": "warning",
    "LATENTSERVE_GRPC_PORT": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
LOADS = (("1 PNG", 1, 32), ("64 PNGs", 64, 8))


class RayCluster:
    """A head and a worker node, each its own `ray start --block` session."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []
        self._start(logs / "ray-head.log", "--head", f"--port={self.port}",
                    "--include-dashboard=false")  # fmt: skip
        time.sleep(8)
        self._start(logs / "ray-worker.log", f"--address={self.address}")
        time.sleep(8)

    def _start(self, log: Path, *args: str) -> None:
        command = [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1",
                   "--num-cpus=2", "--disable-usage-stats", *args]  # fmt: skip
        with log.open("wb") as out:
            env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
            self.nodes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True, env=env))  # fmt: skip

    def stop(self) -> None:
        for node in self.nodes:
            os.killpg(node.pid, signal.SIGTERM)
        time.sleep(3)
        for entry in os.listdir("/proc"):  # whatever of the two sessions is left
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) in {n.pid for n in self.nodes}:
                        os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    continue


def deploy(cluster: RayCluster, scratch: Path) -> str:
    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve.yaml").read_text())
    port = free_port()
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    (application,) = config["applications"]
    application["runtime_env"]["env_vars"].update({
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"), "LATENTSERVE_MODELS": MODEL,
        "LATENTSERVE_LOG_LEVEL": "warning",
        "LATENTSERVE_INDEX_CACHE_DIR": str(ROOT / "models" / ".index-cache")})  # fmt: skip
    (deployment,) = application["deployments"]
    deployment.pop("autoscaling_config")
    deployment["num_replicas"] = 2
    path = scratch / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    subprocess.run([str(BIN / "serve"), "run", "--address", cluster.address, "--non-blocking",
                    str(path)], check=True, capture_output=True, timeout=180)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    in_a_row = 0
    while in_a_row < 20:  # both replicas answer
        try:
            ok = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            ok = False
        in_a_row = in_a_row + 1 if ok else 0
        assert time.monotonic() < deadline, "Ray Serve never became ready"
        time.sleep(0.5 if not ok else 0.05)
    time.sleep(20)  # the second replica's models too (its first health check waits for them)
    return url


def load(url: str, scratch: Path, duration: int) -> dict[str, dict[str, Any]]:
    rows = {}
    for name, images, connections in LOADS:
        script = wrk_script(scratch, multipart(sample_pngs(MODEL, images)))
        result = run_wrk(f"{url}/classify?model={MODEL}", script, connections, duration)
        rows[name] = {**result, "images_s": result["req_s"] * images}
    return rows


def bulk(command: list[str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*command, "--out", str(out), "--model", MODEL], check=True,
                   capture_output=True, timeout=900)  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    from training.datasets import load_dataset

    runs: dict[str, list[dict[str, dict[str, Any]]]] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        src = scratch / "t10k.npy"
        np.save(src, load_dataset(MODEL).x_test)
        cluster = RayCluster(LOGS)
        try:
            ray_url = deploy(cluster, scratch)
            app = "app.main:app_from_env"
            for _ in range(args.rounds):
                for workers in (1, 2):
                    env = {**ENV, "LATENTSERVE_WORKERS": str(workers)}
                    with Server.uvicorn(app, env, True, LOGS / "cluster.log", workers) as server:
                        runs.setdefault(f"uvicorn, {workers} worker(s)", []).append(
                            load(server.url, scratch, args.duration)
                        )
                runs.setdefault("Ray Serve, 2 replicas on 2 nodes", []).append(
                    load(ray_url, scratch, args.duration))  # fmt: skip
            with Server.uvicorn(app, ENV, True, LOGS / "cluster.log") as server:
                local = [str(BIN / "latentserve"), "embed", str(src), "--url", server.url]
                timings["latentserve embed, one worker"] = bulk(local, scratch / "local.npy")
            ray = [str(BIN / "latentserve"), "embed", str(src), "--engine", "ray", "--address",
                   cluster.address, "--repository", str(ROOT / "models")]  # fmt: skip
            timings["latentserve embed --engine ray, 2 nodes"] = bulk(ray, scratch / "ray.npy")
            same = float(
                np.abs(np.load(scratch / "local.npy") - np.load(scratch / "ray.npy")).max()
            )
        finally:
            cluster.stop()
    table = summarise(runs)
    record = {"machine": machine(), "duration_s": args.duration, "rounds": args.rounds,
              "serving": table, "bulk_s": timings, "bulk_max_abs_diff": same}  # fmt: skip
    (args.out / "cluster.json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(table, timings, same))
    return 0


def summarise(runs: dict[str, list[dict[str, dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows = []
    for path, rounds in runs.items():
        for name, _, connections in LOADS:
            rates = sorted(r[name]["req_s"] for r in rounds)
            images = sorted(r[name]["images_s"] for r in rounds)
            rows.append({"path": path, "load": f"{name}, {connections} connections",
                         "req_s": statistics.median(rates), "range": [rates[0], rates[-1]],
                         "images_s": statistics.median(images),
                         "p99_ms": statistics.median(r[name]["p99_ms"] for r in rounds),
                         "errors": sum(r[name]["errors"] for r in rounds)})  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]], timings: dict[str, float], same: float) -> str:
    lines = ["| path | load | req/s (median, range) | images/s | p99 | errors |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        low, high = r["range"]
        rate = f"{r['req_s']:,.0f} ({low:,.0f}–{high:,.0f})"
        lines.append(f"| {r['path']} | {r['load']} | {rate} | {r['images_s']:,.0f} "
                     f"| {r['p99_ms']:.1f} ms | {r['errors']} |")  # fmt: skip
    lines += [
        "",
        "| bulk embedding, 10,000 images | wall time | images/s |",
        "| --- | ---: | ---: |",
    ]
    for name, seconds in timings.items():
        lines.append(f"| {name} | {seconds:.1f} s | {10_000 / seconds:,.0f} |")
    lines.append(f"\nLargest difference between the two outputs: {same:g}.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
