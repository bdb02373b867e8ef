"""Where the event loop's time goes under load: py-spy on a server while wrk drives it.

    .venv/bin/python bench/loop_profile.py [--target floor|service] [--connections 32]
        [--seconds 8] [--gil]

Starts the no-model floor (bench/floor.py) or the service, as shipped (access line on), warms
it up, then samples every thread with py-spy (PyPI; a dev dependency) at 200 Hz while wrk
posts one PNG per request to /classify. Prints, for the event-loop thread, the share of its
sampled work (waits in epoll left out) in the frames that matter, inclusive, and the samples
of each busy thread, then each thread's cores from /proc over the same run: the profiles
quoted in docs/benchmarks.md. Shares, not microseconds: py-spy's non-blocking sampling drops
samples it cannot read consistently. With --gil only the thread holding the GIL is sampled,
so the samples per thread split the GIL between them.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, Server, multipart, run_wrk, sample_pngs, stat_cpu_seconds, wrk_script

TARGETS = {"floor": "bench.floor:app_from_env", "service": "app.main:app_from_env"}
PY_SPY = str(Path(sys.executable).parent / "py-spy")  # the dev extra's
MIN_CORES = 0.02  # threads below this are left out of the per-thread line
FRAME = re.compile(r"(.*) \((.*?):\d+\)")  # "function (path:line)"


# The parts of the event loop's work that the throughput issue asks about, by the frame that
# contains each (inclusive): FastAPI's parameter and dependency resolution, reading and
# parsing the upload, decoding (on the loop only in the floor), the model call's hand-off,
# building the response, the access line, and uvicorn writing to the socket.
PARTS = {
    "the whole request (uvicorn's ASGI call)": "RequestResponseCycle.run_asgi",
    "FastAPI: parameters and dependencies": "solve_dependencies",
    "the app's image_batch (model, options, upload)": "image_batch",
    "reading + parsing the upload": "read_sources",
    "decoding the images": "decode_all",
    "runner hand-off (deadline, batcher or inline call)": "within_deadline",
    "building + serialising the response": "classify_json",
    "FastAPI serialising a returned schema": "serialize_response",
    "access line (logging call on the loop)": "Logger.info",
    "uvicorn writing the response": "RequestResponseCycle.send",
}
# Leaf frames where a thread waits rather than works (py-spy samples C waits as active).
WAITING = ("Runner.run", "_worker", "QueueListener.dequeue", "Condition.wait", "Event.wait")


def summarise(raw: Path) -> list[str]:
    loop: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # a frame name py-spy wrote across lines: not a sample
            continue
        thread, *frames = stack.split(";")
        if not frames or any(FRAME.sub(r"\1", frames[-1]) == leaf for leaf in WAITING):
            continue  # blocked in epoll or on a queue: not work
        threads[re.sub(r"\(\d+\)", "", thread).split(":")[-1].strip()] += int(count)
        if "MainThread" in thread:
            for name in {FRAME.sub(r"\1", f) for f in frames}:
                loop[name] += int(count)

    busy = threads["MainThread"] or 1
    lines = [
        "| event-loop work (inclusive) | share of the loop's sampled work |",
        "| --- | --- |",
        *(
            f"| {label} | {100 * loop[frame] / busy:.0f}% |"
            for label, frame in PARTS.items()
            if loop[frame]
        ),
        "",
        "Sampled work per thread (samples): "
        + ", ".join(f"{name} {count}" for name, count in threads.most_common()),
    ]
    return lines


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds each thread of `pid` has used, by thread id and name."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            seconds[f"{name} ({task.name})"] = stat_cpu_seconds(task / "stat")
        except FileNotFoundError:  # the thread ended
            continue
    return seconds


def cores_per_thread(before: dict[str, float], after: dict[str, float], wall: float) -> str:
    busy = {name: (t - before.get(name, 0.0)) / wall for name, t in after.items()}
    shown = sorted(((c, n) for n, c in busy.items() if c >= MIN_CORES), reverse=True)
    total = sum(busy.values())
    return f"Cores per thread (/proc, during the run; {total:.2f} in all): " + ", ".join(
        f"{name} {cores:.2f}" for cores, name in shown
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="floor")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout that serves")
    parser.add_argument("--keep", type=Path, help="also write py-spy's raw samples here")
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    script = wrk_script(out, multipart(sample_pngs("fashion-mnist", 1)))
    env = {
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
        "LATENTSERVE_MODELS": "fashion-mnist",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = out / "logs" / f"profile-{args.target}.log"
    with (
        Server.uvicorn(TARGETS[args.target], env, True, log, root=args.root.resolve()) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run_wrk(server.url + "/classify", script, args.connections, 3)  # warm-up
        raw = Path(tmp) / "profile.txt"
        spy = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(server.process.pid), "--rate", "200",
             "--duration", str(args.seconds), "--format", "raw", "--threads", "--nonblocking",
             "--output", str(raw), *(["--gil"] if args.gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        before, started = thread_cpu(server.process.pid), time.perf_counter()
        result = run_wrk(server.url + "/classify", script, args.connections, args.seconds)
        busy = cores_per_thread(
            before, thread_cpu(server.process.pid), time.perf_counter() - started
        )
        spy.wait(timeout=60)
        print(
            f"{args.target}, /classify one PNG, c={args.connections}: {result['req_s']:.0f} req/s"
        )
        print("\n".join(summarise(raw)))
        print(busy)
        if args.keep:
            args.keep.write_text(raw.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
