"""A/B: the same rows for two checkouts, alternating in one run, so noise hits both alike.

    git archive <ref> | tar -x -C /tmp/before      # the checkout to compare against
    .venv/bin/python bench/ab.py --before /tmp/before [--rounds 3] [--duration 8]
    .venv/bin/python bench/ab.py --before-env LATENTSERVE_INFERENCE_THREADS=0   # a setting
    .venv/bin/python bench/ab.py --workers 1 2          # this checkout, 1 worker against 2
    .venv/bin/python bench/ab.py --app bench.floor:app_from_env \
        --before-env LATENTSERVE_LOG_LEVEL=warning     # the access line's cost on the floor

Both checkouts serve the shipped models of this one, with this virtualenv, access line on as
shipped. Rows: /classify with one PNG (multipart) and with one JSON pixel array at 32
connections, with one PNG at one connection, and with 256 PNGs per request at 8. Each round
starts a fresh server per checkout (before, then after); the table gives each row's median
req/s over the rounds and the median of the rounds' own after/before ratios, with their range
(the machine's speed drifts by the hour, so a ratio within a round says more than one across
the run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from harness import (
    ROOT,
    Server,
    json_pixels,
    machine,
    multipart,
    run_wrk,
    sample_pngs,
    wrk_script,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=ROOT, help="checkout to compare against")
    parser.add_argument(
        "--app", default="app.main:app_from_env", help="uvicorn factory both sides serve"
    )
    parser.add_argument(
        "--before-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="setting for the 'before' server only (e.g. LATENTSERVE_INFERENCE_THREADS=0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs=2,
        default=(1, 1),
        metavar=("BEFORE", "AFTER"),
        help="uvicorn workers of each side (e.g. --before . --workers 1 2: scaling)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scripts = {
        "PNG": wrk_script(args.out, multipart(sample_pngs(args.model, 1))),
        "JSON": wrk_script(args.out, json_pixels(args.model), {"Content-Type": "application/json"}),
    }
    scripts["256 PNGs"] = wrk_script(args.out, multipart(sample_pngs(args.model, 256)))
    rows = [
        ("1 PNG", "PNG", 32),
        ("1 JSON array", "JSON", 32),
        ("1 PNG", "PNG", 1),
        ("256 PNGs", "256 PNGs", 8),
    ]
    env = {
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
        "LATENTSERVE_DEFAULT_MODEL": args.model,
        "LATENTSERVE_LOG_LEVEL": "info",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        before_env = {**env, **dict(item.split("=", 1) for item in args.before_env)}
        sides = (
            ("before", args.before.resolve(), before_env, args.workers[0]),
            ("after", ROOT, env, args.workers[1]),
        )
        for label, root, side_env, workers in sides:
            log = args.out / "logs" / f"ab-{label}.log"
            with Server.uvicorn(args.app, side_env, True, log, workers, root) as server:
                for name, script, conns in rows:
                    cpu = server.cpu_seconds()
                    result = run_wrk(
                        f"{server.url}/classify", scripts[script], conns, args.duration
                    )
                    # CPU time per request is steadier than req/s when the machine is shared.
                    spent = server.cpu_seconds() - cpu
                    result["cpu_us"] = spent / max(result["requests"], 1) * 1e6
                    runs.setdefault((label, name, conns), []).append(result)
                    print(f"round {round_} {label:<6} {name:<13} c={conns:<3} {result}", flush=True)
    lines = [
        f"Machine: {machine()}; {args.rounds} rounds, {args.duration} s per wrk run, "
        f"model `{args.model}`, `{args.app}`; before = `{args.before}` "
        f"{' '.join(args.before_env)}; workers before/after {args.workers[0]}/{args.workers[1]}. "
        "Medians over the rounds; CPU is the "
        "server process's user + system time per request, every thread.",
        "",
        "| /classify body | conns | req/s before | req/s after | after/before, paired "
        "(min–max) | CPU µs/request before | after | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, _, conns in rows:
        before, after = runs[("before", name, conns)], runs[("after", name, conns)]
        rate = [statistics.median(r["req_s"] for r in side) for side in (before, after)]
        cpu = [statistics.median(r["cpu_us"] for r in side) for side in (before, after)]
        # Each round's after/before: the two ran minutes apart, so hour-scale drift cancels.
        paired = [a["req_s"] / b["req_s"] for a, b in zip(after, before, strict=True)]
        errors = sum(r["errors"] for r in before + after)
        lines.append(
            f"| {name} | {conns} | {rate[0]:.0f} | {rate[1]:.0f} | "
            f"{statistics.median(paired):.2f} ({min(paired):.2f}–{max(paired):.2f}) "
            f"| {cpu[0]:.0f} | {cpu[1]:.0f} | {errors} |"
        )
    table = "\n".join(lines) + "\n"
    (args.out / "ab.md").write_text(table)
    (args.out / "ab.json").write_text(
        json.dumps({" ".join(map(str, k)): v for k, v in runs.items()}, indent=2) + "\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
