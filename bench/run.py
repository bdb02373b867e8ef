"""Throughput benchmark: one command, one machine, every figure from the same run.

    .venv/bin/python bench/run.py [--duration 10] [--model fashion-mnist] [--out bench/out]

Load comes from wrk (Debian package `wrk`), on loopback only. Measured in order:
  1. a FastAPI hello-world GET (the ceiling for this framework on this machine),
  2. the service with LATENTSERVE_BATCHING=false: decode + one SavedModel call per request,
  3. in-process batched TensorFlow throughput (no HTTP),
  3b. the framework floor: the service's request path with zeros for a model (bench/floor.py),
  4. the batching service: /classify, /embed, /reconstruct with one PNG per request at
     1, 32 and 128 connections, and with 256-image requests; /classify with one image as a
     JSON pixel array at 32 connections; then one worker against two, alternated round
     after round,
  4b. the service and the floor under granian instead of uvicorn (opt-in candidates),
  5. the peers (bench/peers.py): BentoML, KServe, MLServer and a plain FastAPI route on the
     same model, against latentserve, round after round.
Every server as shipped: latentserve writes its access line, the peers their own logs.
Writes out/results.json and prints markdown tables (copied into docs/benchmarks.md) with each
target of the throughput issue as a ratio within this one run (bench/report.py).
"""

import argparse
import base64
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import peers
from harness import (
    ROOT,
    Server,
    json_pixels,
    machine,
    multipart,
    run_wrk,
    sample_pngs,
    v2_request,
    wrk_script,
)
from report import ONE_WORKER, TWO_WORKERS, markdown

HELLO, APP, FLOOR = "bench.hello:app", "app.main:app_from_env", "bench.floor:app_from_env"


def in_process(model_name: str, seconds: float) -> dict[str, Any]:
    """Encoder + head images/s without HTTP, through the same graph call the service makes
    (`Model.run("classify", ...)`, loaded by the service's default loader, so in the same
    runtime): batch 512, and one image per call."""
    from app.contract.repository import latest_version
    from app.main import RuntimeLoader
    from app.settings import Settings

    settings = Settings(model_repository=ROOT / "models")
    loader = RuntimeLoader(settings.runtime, settings.inference_threads, settings.graph_cache)
    model = loader(*latest_version(ROOT / "models", model_name))
    result: dict[str, Any] = {"runtime": type(model).__name__}
    for batch in (512, 1):
        images = np.zeros((batch, 28, 28), dtype=np.uint8)
        model.run("classify", images)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.run("classify", images)
            done += batch
        result[f"batch_{batch}_images_s"] = done / (time.perf_counter() - start)
    return result


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    logs = out / "logs"
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
        "LATENTSERVE_LOG_LEVEL": "info",  # as shipped: one access line per request
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    rows: list[dict[str, Any]] = []

    def measure(
        name: str, server: Server, path: str, script: Path, conns: int, images: int
    ) -> None:
        cpu = server.cpu_seconds()
        # Halfway through, which process holds how many connections (workers share a socket,
        # and whichever wakes first accepts what is waiting).
        split: list[list[int]] = []
        sampler = threading.Timer(args.duration / 2, lambda: split.append(
            server.connections_per_process()))  # fmt: skip
        sampler.start()
        result = run_wrk(server.url + path, script, conns, args.duration)
        sampler.join()
        # Cores the server kept busy: what one more worker could still use on this machine.
        result["server_cores"] = (server.cpu_seconds() - cpu) / args.duration
        result["connections_per_process"] = split[0] if split else []
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
    with Server.uvicorn(HELLO, {}, False, logs / "hello.log") as hello:
        measure("hello-world ceiling", hello, "/", get, 32, 0)
    peaks["hello-world"] = hello.peak_mb

    unbatched = {**model_env, "LATENTSERVE_BATCHING": "false"}
    with Server.uvicorn(APP, unbatched, True, logs / "unbatched.log") as baseline:
        for conns in (1, 32):
            measure("unbatched baseline", baseline, "/classify", one_png, conns, 1)
    peaks["unbatched baseline"] = baseline.peak_mb

    # The same request path minus the model: an upper bound for any batcher in one worker.
    with Server.uvicorn(FLOOR, model_env, True, logs / "floor.log") as floor:
        measure("no-model floor", floor, "/classify", one_png, 32, 1)
        measure("no-model floor", floor, "/classify", batch_png, 8, 256)
    peaks["no-model floor"] = floor.peak_mb

    inproc = in_process(args.model, seconds=min(args.duration, 5))
    print("in-process", inproc, flush=True)

    with Server.uvicorn(APP, model_env, True, logs / "service.log") as service:
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
    with Server.uvicorn(HELLO, {}, False, logs / "hello-2.log", 2) as hello2:
        measure("hello-world, 2 workers", hello2, "/", get, 32, 0)
    # 2 workers against 1, both up and alternated over the rounds: one row each read 1.63x
    # and 2.33x in two runs (docs/benchmarks.md), the machine's drift between rows minutes
    # apart; within a round it weighs on both alike.
    with (
        Server.uvicorn(APP, model_env, True, logs / "pair-1-worker.log") as one_worker,
        Server.uvicorn(APP, model_env, True, logs / "service-2.log", 2) as service2,
    ):
        for _ in range(args.rounds):
            measure(ONE_WORKER, one_worker, "/classify", one_png, 32, 1)
            measure(TWO_WORKERS, service2, "/classify", one_png, 32, 1)
    peaks["service, 2 workers (per worker)"] = service2.peak_mb

    # granian beside uvicorn (issue 29): the same app, both up, alternated twice.
    with (
        Server.uvicorn(APP, model_env, True, logs / "pair-uvicorn.log") as on_uvicorn,
        Server.granian(APP, model_env, logs / "pair-granian.log") as on_granian,
    ):
        for _ in range(2):
            measure("pair: service on uvicorn", on_uvicorn, "/classify", one_png, 32, 1)
            measure("pair: service on granian", on_granian, "/classify", one_png, 32, 1)
    with Server.granian(FLOOR, model_env, logs / "floor-granian.log") as floor_granian:
        measure("no-model floor on granian", floor_granian, "/classify", one_png, 32, 1)
    peaks["service on granian"] = on_granian.peak_mb
    return {
        "machine": machine(),
        "duration_s": args.duration,
        "model": args.model,
        "rows": rows,
        "in_process": inproc,
        "peak_rss_mb": peaks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the peers and of 1 against 2 workers"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the peer comparison")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    results = benchmark(args)
    if not args.no_peers:
        results["peers"] = peers.compare(args.model, args.duration, args.rounds, args.out)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
