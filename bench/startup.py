"""How long the service takes to be ready, against a bare `import tensorflow`, with the
similarity-graph cache cold (every graph built) and warm (every graph opened).

    .venv/bin/python bench/startup.py [--rounds 3]

Each round: `python -c "import tensorflow"`, then the service on the shipped repository
(`python -m app`, one worker, every shipped model) with an empty cache directory, then again
with the cache that start left behind; time from process start to the first 200 on /readyz.
Prints a markdown table of medians (and each round's figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180.0


def import_tensorflow() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    return time.perf_counter() - started


def ready(cache: Path) -> float:
    """Seconds from starting the service until /readyz answers 200."""
    port = free_port()
    env = {
        **os.environ,
        "LATENTSERVE_PORT": str(port),
        "LATENTSERVE_INDEX_CACHE_DIR": str(cache),
        "LATENTSERVE_LOG_LEVEL": "warning",
        "LATENTSERVE_RELOAD_INTERVAL_S": "0",
    }
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < TIMEOUT_S:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"not ready in {TIMEOUT_S} s")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"import tensorflow": [], "cold cache": [], "warm cache": []}
    for _ in range(args.rounds):
        rows["import tensorflow"].append(import_tensorflow())
        with tempfile.TemporaryDirectory() as cache:
            rows["cold cache"].append(ready(Path(cache)))
            rows["warm cache"].append(ready(Path(cache)))
    base = statistics.median(rows["import tensorflow"])
    print("| step | seconds, median (rounds) | × import tensorflow |\n| --- | --- | --- |")
    for name, values in rows.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {median:.1f} ({rounds}) | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
