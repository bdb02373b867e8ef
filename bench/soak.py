"""Bounded soak test: mixed traffic at 64 connections against one server, loopback only.

    .venv/bin/python bench/soak.py [--phase-seconds 85] [--phases 4]

After a warm-up, wrk (bench/soak.lua) sends a rotation of valid single- and multi-image,
invalid, oversize and unknown-model requests in consecutive phases; between phases the
server's RSS is read from /proc. Pass criteria (printed with the figures): at least 100,000
requests, zero 5xx, no socket errors (every request answered), RSS growth after warm-up
<= 10%, and p99 of the last phase within 20% of the first.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, Server, multipart, sample_pngs

SOAK_BOUNDARY = "latentservesoak"
MAX_BODY_BYTES = 64 * 1024  # small, so the oversize request is cheap to send


def write_bodies(directory: Path, model: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pngs = sample_pngs(model, 4)
    for name, parts in (("one.bin", pngs[:1]), ("four.bin", pngs)):
        body = multipart(parts).replace(b"latentservebench", SOAK_BOUNDARY.encode())
        (directory / name).write_bytes(body)
    image = np.zeros((28, 28), dtype=int)
    image[6:22, 12:16] = 255
    (directory / "array.json").write_text(json.dumps({"instances": [image.tolist()]}))
    (directory / "truncated.png").write_bytes(pngs[0][: len(pngs[0]) // 2])
    (directory / "oversize.bin").write_bytes(b"\0" * (MAX_BODY_BYTES + 1024))


def rss_mb(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def phase(url: str, seconds: int, workdir: Path) -> dict[str, float]:
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "soak.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"SOAK_DIR": str(workdir)},
    ).stdout
    from bench.harness import _ms

    counts = dict(re.findall(r"(\w+)=(\d+)", output.split("STATUS", 1)[1]))
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", output, flags=re.M)
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "socket_errors": socket_errors,
        **{k: int(v) for k, v in counts.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=int, default=85)
    parser.add_argument("--phases", type=int, default=4)
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    workdir = args.out / "soak"
    write_bodies(workdir, args.model)
    env = {
        "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
        "LATENTSERVE_DEFAULT_MODEL": args.model,
        "LATENTSERVE_LOG_LEVEL": "warning",
        "LATENTSERVE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with Server.uvicorn(
        "app.main:app_from_env", env, True, ROOT / "bench/out/logs/soak.log"
    ) as server:
        phase(server.url, 10, workdir)  # warm-up
        rss = [rss_mb(server)]
        phases = []
        for number in range(args.phases):
            phases.append(phase(server.url, args.phase_seconds, workdir))
            rss.append(rss_mb(server))
            print(f"phase {number + 1}: {phases[-1]}, RSS {rss[-1]:.0f} MB", flush=True)
    total = sum(p["requests"] for p in phases)
    checks = {
        "requests >= 100,000": total >= 100_000,
        "zero 5xx": all(p["server_errors"] == 0 for p in phases),
        "every request answered (no socket errors)": all(p["socket_errors"] == 0 for p in phases),
        "RSS growth after warm-up <= 10%": max(rss) <= rss[0] * 1.10,
        "last-phase p99 within 20% of first": phases[-1]["p99_ms"] <= phases[0]["p99_ms"] * 1.2,
    }
    lines = [
        "| phase | requests | 2xx | 4xx | 5xx | socket errors | p99 ms | RSS after, MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| warm-up (10 s) | | | | | | | {rss[0]:.0f} |",
    ]
    for number, (p, after) in enumerate(zip(phases, rss[1:], strict=True), start=1):
        lines.append(
            f"| {number} ({args.phase_seconds} s) | {p['requests']} | {p['ok']} | "
            f"{p['client_errors']} | {p['server_errors']} | {p['socket_errors']} | "
            f"{p['p99_ms']:.1f} | {after:.0f} |"
        )
    lines += ["", f"Total {total} requests.", "", "| criterion | met |", "| --- | --- |"]
    lines += [f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in checks.items()]
    report = "\n".join(lines) + "\n"
    (args.out / "soak.md").write_text(report)
    print(report)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
