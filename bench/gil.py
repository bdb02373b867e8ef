"""Why one worker process stays near one core: the model thread against a busy event loop.

    .venv/bin/python bench/gil.py [--seconds 3] [--batch 16]

In one process, as in the service: a thread calling the shipped `fashion-mnist` model
(`ModelVersion.run("classify", ...)`, the batcher's call) beside a thread running pure Python
(standing in for the event loop under load, which is busy Python: HTTP, multipart, routing,
rendering). Prints model calls/s alone and beside the busy thread at several GIL switch
intervals (`sys.setswitchinterval`), the busy thread's work as a share of its work alone,
and the process's cores. A model thread that kept its speed beside the loop would mean the
second core is there for the taking in one process; one that falls to a fraction of it means
every GIL hand-off it needs costs a switch interval and the two share one core's worth of GIL.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INTERVALS_MS = (5.0, 1.0, 0.5, 0.1)  # 5 ms: Python's default


def busy_python(seconds: float, out: list[int]) -> None:
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        count += 1
    out.append(count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from app.contract.repository import latest_version
    from app.models.inference import configure_threads, load_version

    configure_threads(1)  # the service's default (LATENTSERVE_INFERENCE_THREADS)
    model = load_version(*latest_version(ROOT / "models", "fashion-mnist"))
    images = np.zeros((args.batch, 28, 28), np.uint8)

    def call_model(out: list[int]) -> None:
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < args.seconds:
            model.run("classify", images)
            count += 1
        out.append(count)

    call_model([])  # warm-up
    alone_calls: list[int] = []
    call_model(alone_calls)
    alone_busy: list[int] = []
    busy_python(args.seconds, alone_busy)
    print(f"model alone: {alone_calls[0] / args.seconds:.0f} calls/s (batch {args.batch})")
    print("| switch interval | model calls/s | × alone | busy thread's work × alone | cores |")
    print("| --- | --- | --- | --- | --- |")
    default = sys.getswitchinterval()
    for interval in INTERVALS_MS:
        sys.setswitchinterval(interval / 1000)
        calls: list[int] = []
        busy: list[int] = []
        cpu, wall = os.times(), time.perf_counter()
        threads = [
            threading.Thread(target=call_model, args=(calls,)),
            threading.Thread(target=busy_python, args=(args.seconds, busy)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = os.times()
        cores = (after.user + after.system - cpu.user - cpu.system) / (time.perf_counter() - wall)
        print(
            f"| {interval:g} ms | {calls[0] / args.seconds:.0f} | {calls[0] / alone_calls[0]:.2f} "
            f"| {busy[0] / alone_busy[0]:.2f} | {cores:.2f} |"
        )
    sys.setswitchinterval(default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
