"""CPU time per /classify request through the whole app in-process, for two checkouts.

    git archive <ref> | tar -x -C /tmp/before
    .venv/bin/python bench/path_cost.py --before /tmp/before [--rounds 3] [--requests 3000]

The no-model floor (bench/floor.py: real middlewares, routing, multipart parsing, decoding,
rendering; a model that answers zeros) driven through httpx's ASGI transport: no sockets, no
wrk, no other process, so the figure is the request path's own CPU, steady to about 1 %
between runs where wrk's req/s at one connection drifts by 10-20 %. One fresh process per
checkout and round, alternating, one multipart PNG per request.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "docs" / "samples" / "ankle-boot.png"
WARM_UP = 200
CHILD = """
import asyncio, logging, os, sys, time
sys.path.insert(0, os.getcwd())
os.environ["LATENTSERVE_LOG_LEVEL"] = "warning"
import httpx
from bench.floor import app_from_env

async def main(requests, png):
    app = app_from_env()
    logging.getLogger("latentserve.access").setLevel(logging.WARNING)
    async with app.router.lifespan_context(app):
        while not app.state.registry.ready:
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            async def one():
                response = await client.post(
                    "/classify?model=fashion-mnist", files={"file": ("a.png", png)}
                )
                assert response.status_code == 200, response.text
            for _ in range(%(warm_up)d):
                await one()
            started = time.process_time()
            for _ in range(requests):
                await one()
            print((time.process_time() - started) / requests * 1e6)

asyncio.run(main(int(sys.argv[1]), open(sys.argv[2], "rb").read()))
"""


def measure(checkout: Path, requests: int) -> float:
    """CPU microseconds per request, in a fresh process running `checkout`'s code."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD % {"warm_up": WARM_UP}, str(requests), str(SAMPLE)],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    before, after = [], []
    for _ in range(args.rounds):
        before.append(measure(args.before, args.requests))
        after.append(measure(ROOT, args.requests))
    ratios = [a / b for a, b in zip(after, before, strict=True)]
    print("| checkout | CPU µs per request, median (rounds) |\n| --- | --- |")
    for name, values in (("before", before), ("after", after)):
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} ({rounds}) |")
    spread = f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    print(f"\nafter/before: {statistics.median(ratios):.3f} ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
