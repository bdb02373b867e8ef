"""Throughput benchmark: one command, one machine, every figure from the same run.

    .venv/bin/python bench/run.py [--duration 10] [--model fashion-mnist] [--out bench/out]

Load comes from wrk (Debian package `wrk`), on loopback only. Measured in order:
  1. a FastAPI hello-world GET (the ceiling for this framework on this machine),
  2. the service with LATENTSERVE_BATCHING=false: decode + one SavedModel call per request,
  3. in-process batched TensorFlow throughput (no HTTP),
  3b. the framework floor: the service's request path with zeros for a model (bench/floor.py),
  4. the batching service: /classify, /embed, /reconstruct with one PNG per request at
     1, 32 and 128 connections, and with 256-image requests; /classify with one image as a
     JSON pixel array at 32 connections.
Writes out/results.json and prints a markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOUNDARY = "latentservebench"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_pngs(model: str, count: int) -> list[bytes]:
    """Real test images where the dataset is installed, else a fixed synthetic stroke."""
    from training.datasets import DatasetError, load_dataset

    try:
        images = load_dataset(model).x_test[:count]
    except DatasetError:
        images = np.zeros((count, 28, 28), dtype=np.uint8)
        images[:, 6:22, 12:16] = 255
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def multipart(pngs: list[bytes]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n"
        for i, png in enumerate(pngs)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def json_pixels(model: str) -> bytes:
    """One test image as the JSON body form: {"instances": [28x28 array of 0-255]}."""
    from training.datasets import DatasetError, load_dataset

    try:
        image = load_dataset(model).x_test[0]
    except DatasetError:
        image = np.zeros((28, 28), dtype=np.uint8)
        image[6:22, 12:16] = 255
    return json.dumps({"instances": [image.tolist()]}).encode()


def wrk_script(workdir: Path, body: bytes | None, headers: dict[str, str] | None = None) -> Path:
    """A wrk script POSTing `body` (multipart unless headers say otherwise), or a plain GET."""
    if body is None:
        script = workdir / "get.lua"
        script.write_text("")
        return script
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
    key = hashlib.sha256(body + repr(sorted(headers.items())).encode()).hexdigest()[:12]
    body_file = workdir / f"body-{key}.bin"
    body_file.write_bytes(body)
    script = workdir / f"post-{key}.lua"
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        "wrk.body = f:read('*a')\nf:close()\n"
        'wrk.method = "POST"\n'
        + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in headers.items())
    )
    return script


def v2_request(png: bytes) -> tuple[bytes, dict[str, str]]:
    """One PNG as tritonclient sends it: a BYTES input in binary, `probabilities` asked for in
    binary (tritonclient's defaults), behind Inference-Header-Content-Length."""
    header = json.dumps(
        {
            "inputs": [
                {"name": "images", "shape": [1], "datatype": "BYTES",
                 "parameters": {"binary_data_size": len(png) + 4}}
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()  # fmt: skip
    body = header + len(png).to_bytes(4, "little") + png
    return body, {"Content-Type": "application/octet-stream",
                  "Inference-Header-Content-Length": str(len(header))}  # fmt: skip


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, Any]:
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, flags=re.M))
    if len(latency) < 2:  # no request completed: report it rather than crash the whole run
        latency = {"50": "0us", "99": "0us"}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


class Server:
    """A uvicorn process on loopback; peak RSS read from /proc when it stops."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        factory: bool,
        workers: int = 1,
        root: Path = ROOT,
    ) -> None:
        """`root`: the checkout whose code serves (another one for A/B runs, bench/ab.py)."""
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if factory:
            cmd.append("--factory")
        if workers > 1:
            cmd += ["--workers", str(workers)]
        self.process = subprocess.Popen(cmd, cwd=root, env={**os.environ, **env})
        self.url = f"http://127.0.0.1:{self.port}"
        self.peak_mb = 0.0
        deadline = time.monotonic() + START_TIMEOUT_S
        in_a_row = 0  # workers share the socket: many fresh connections in a row must succeed
        while in_a_row < 10 * workers:
            try:
                ok = httpx.get(f"{self.url}/readyz" if factory else self.url, timeout=1).is_success
            except httpx.TransportError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if ok:
                continue
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{target} did not become ready")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """CPU time (user + system, every thread) the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of the server process and its worker processes."""
        pids = [self.process.pid]
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        peaks = []
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)  # type: ignore[union-attr]
        return max(peaks)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        """Always stop the process (also when a run fails); keep its peak RSS."""
        self.peak_mb = self.peak_rss_mb()
        self.process.terminate()
        self.process.wait(timeout=60)


def in_process(model_name: str, seconds: float) -> dict[str, float]:
    """Encoder + head images/s without HTTP, through the same composed graph call the service
    makes (`ModelVersion.classify`): batch 512, and one image per call."""
    from app.inference import load_version
    from app.repository import latest_version

    model = load_version(*latest_version(ROOT / "models", model_name))
    result = {}
    for batch in (512, 1):
        images = np.zeros((batch, 28, 28), dtype=np.uint8)
        model.classify(images)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.classify(images)
            done += batch
        result[f"batch_{batch}_images_s"] = done / (time.perf_counter() - start)
    return result


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB RAM, Python {python}"


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    single = multipart(sample_pngs(args.model, 1))
    many = multipart(sample_pngs(args.model, 256))
    one_png, batch_png, get = wrk_script(out, single), wrk_script(out, many), wrk_script(out, None)
    one_json = wrk_script(out, json_pixels(args.model), {"Content-Type": "application/json"})
    png = sample_pngs(args.model, 1)[0]
    one_v2 = wrk_script(out, *v2_request(png))
    one_tf = wrk_script(
        out, json.dumps({"instances": [{"b64": base64.b64encode(png).decode()}]}).encode(), {}
    )
    model_env = {
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
        "LATENTSERVE_DEFAULT_MODEL": args.model,
        "LATENTSERVE_LOG_LEVEL": "warning",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    rows: list[dict[str, Any]] = []

    def measure(
        name: str, server: Server, path: str, script: Path, conns: int, images: int
    ) -> None:
        result = run_wrk(server.url + path, script, conns, args.duration)
        rows.append(
            {
                "name": name,
                "path": path,
                "connections": conns,
                "images_per_request": images,
                **result,
                "images_s": result["req_s"] * images,
            }
        )
        print(f"{name:<28} {path:<12} c={conns:<4} {result}", flush=True)

    peaks: dict[str, float] = {}
    with Server("bench.hello:app", {}, factory=False) as hello:
        measure("hello-world ceiling", hello, "/", get, 32, 0)
    peaks["hello-world"] = hello.peak_mb

    unbatched = {**model_env, "LATENTSERVE_BATCHING": "false"}
    with Server("app.main:app_from_env", unbatched, factory=True) as baseline:
        for conns in (1, 32):
            measure("unbatched baseline", baseline, "/classify", one_png, conns, 1)
    peaks["unbatched baseline"] = baseline.peak_mb

    # The same request path minus the model: an upper bound for any batcher in one worker.
    with Server("bench.floor:app_from_env", model_env, factory=True) as floor:
        measure("no-model floor", floor, "/classify", one_png, 32, 1)
        measure("no-model floor", floor, "/classify", batch_png, 8, 256)
    peaks["no-model floor"] = floor.peak_mb

    inproc = in_process(args.model, seconds=min(args.duration, 5))
    print("in-process", inproc, flush=True)

    with Server("app.main:app_from_env", model_env, factory=True) as service:
        for path in ("/classify", "/embed", "/reconstruct"):
            for conns in (1, 32, 128):
                measure("service, 1 PNG", service, path, one_png, conns, 1)
            measure("service, 256 PNGs", service, path, batch_png, 8, 256)
        measure("service, 1 JSON array", service, "/classify", one_json, 32, 1)
        # The protocol comparison alternates the two rows twice: minutes of drift in the
        # machine's speed then weigh on both alike (the ratio takes each side's better run).
        v2_path = f"/v2/models/{args.model}/infer"
        for _ in range(2):
            measure("pair: native /classify", service, "/classify", one_png, 32, 1)
            measure("pair: V2 binary PNG", service, v2_path, one_v2, 32, 1)
        measure(
            "service, TF Serving b64 PNG",
            service,
            f"/v1/models/{args.model}:predict",
            one_tf,
            32,
            1,
        )
    peaks["service"] = service.peak_mb

    # Beyond the one-worker setup: both cores for Python, each worker batching alone.
    with Server("bench.hello:app", {}, factory=False, workers=2) as hello2:
        measure("hello-world, 2 workers", hello2, "/", get, 32, 0)
    with Server("app.main:app_from_env", model_env, factory=True, workers=2) as service2:
        measure("service, 2 workers", service2, "/classify", one_png, 32, 1)
    peaks["service, 2 workers (per worker)"] = service2.peak_mb
    return {
        "machine": machine(),
        "duration_s": args.duration,
        "model": args.model,
        "rows": rows,
        "in_process": inproc,
        "peak_rss_mb": peaks,
    }


def find(rows: list[dict[str, Any]], name: str, path: str, conns: int) -> dict[str, Any]:
    return next(
        r for r in rows if r["name"] == name and r["path"] == path and r["connections"] == conns
    )


def best(rows: list[dict[str, Any]], name: str) -> float:
    """The higher req/s of a row measured more than once."""
    return max(r["req_s"] for r in rows if r["name"] == name)


def ratios(results: dict[str, Any]) -> list[tuple[str, float, str, bool | None]]:
    """The issue's targets (name, value, goal, met), then ratios with no target (met None):
    what two workers reach, and the no-model floor that bounds any batcher in one worker."""
    rows = results["rows"]
    hello = find(rows, "hello-world ceiling", "/", 32)
    base32 = find(rows, "unbatched baseline", "/classify", 32)
    base1 = find(rows, "unbatched baseline", "/classify", 1)
    svc32 = find(rows, "service, 1 PNG", "/classify", 32)
    svc1 = find(rows, "service, 1 PNG", "/classify", 1)
    big = find(rows, "service, 256 PNGs", "/classify", 8)
    hello2 = find(rows, "hello-world, 2 workers", "/", 32)
    svc2 = find(rows, "service, 2 workers", "/classify", 32)
    floor32 = find(rows, "no-model floor", "/classify", 32)
    floor256 = find(rows, "no-model floor", "/classify", 8)
    pair_native = best(rows, "pair: native /classify")
    pair_v2 = best(rows, "pair: V2 binary PNG")
    inproc = results["in_process"]["batch_512_images_s"]
    checks = [
        ("/classify c=32 req/s vs unbatched", svc32["req_s"] / base32["req_s"], ">= 4x", 4.0),
        ("/classify c=32 req/s vs hello-world", svc32["req_s"] / hello["req_s"], ">= 0.5x", 0.5),
        (
            "/classify c=32 p99 vs unbatched p99",
            svc32["p99_ms"] / base32["p99_ms"],
            "<= 0.25x",
            -0.25,
        ),
        ("256-image images/s vs in-process batch 512", big["images_s"] / inproc, ">= 0.5x", 0.5),
        ("c=1 p50 minus unbatched p50 (ms)", svc1["p50_ms"] - base1["p50_ms"], "<= 1 ms", -1.0),
        (
            "V2 binary PNG c=32 req/s vs /classify c=32 (alternated pair)",
            pair_v2 / pair_native,
            ">= 0.9x",
            0.9,
        ),
    ]
    context = [
        (
            "(2 workers) /classify c=32 req/s vs unbatched (1 worker)",
            svc2["req_s"] / base32["req_s"],
        ),
        (
            "(2 workers) /classify c=32 req/s vs hello-world (2 workers)",
            svc2["req_s"] / hello2["req_s"],
        ),
        ("(bound) no-model floor c=32 req/s vs unbatched", floor32["req_s"] / base32["req_s"]),
        ("(bound) no-model floor c=32 req/s vs hello-world", floor32["req_s"] / hello["req_s"]),
        ("(bound) no-model floor 256-image images/s vs in-process", floor256["images_s"] / inproc),
    ]
    measured: list[tuple[str, float, str, bool | None]] = [
        (name, value, goal, value >= bound if bound > 0 else value <= -bound)
        for name, value, goal, bound in checks
    ]
    return measured + [(name, value, "–", None) for name, value in context]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {results['machine']}; wrk on the same machine, {results['duration_s']} s "
        f"per run, one uvicorn worker, model `{results['model']}`.",
        "",
        "| run | path | conns | images/req | req/s | images/s | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['name']} | {r['path']} | {r['connections']} | {r['images_per_request']} | "
            f"{r['req_s']:.0f} | {r['images_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} |"
        )
    inproc = results["in_process"]
    lines += [
        "",
        f"In-process encoder + head (no HTTP): {inproc['batch_512_images_s']:.0f} "
        f"images/s at batch 512, {inproc['batch_1_images_s']:.0f} images/s one image "
        "per call.",
        "",
        "Peak RSS per server process: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in results["peak_rss_mb"].items())
        + ".",
        "",
        "| target | measured | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, value, goal, ok in ratios(results):
        met = "–" if ok is None else "yes" if ok else "**no**"
        lines.append(f"| {name} | {value:.2f} | {goal} | {met} |")
    errors = sum(r["errors"] for r in results["rows"])
    lines.append(f"| errors in every run | {errors} | 0 | {'yes' if errors == 0 else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    results = benchmark(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
