"""gRPC beside REST, one run, one server (`make bench` runs it):

    .venv/bin/python bench/transports.py [--duration 10] [--rounds 3]

The same requests three ways against one latentserve worker serving the shipped models, each
driven by the same load generator, h2load (nghttp2, Debian's nghttp2-client), so the client's
cost is the same kind for all: the native `/classify` (multipart PNG, HTTP/1.1), Open
Inference Protocol V2 over REST (Triton's binary tensor data, HTTP/1.1) and V2 over gRPC
(HTTP/2, `raw_input_contents`), each asking for probabilities and label. One PNG and 64 PNGs
per request, at 1 and 32 connections, rounds interleaved; the median round is reported, with
the range. wrk cannot speak gRPC, so these REST figures are h2load's, not bench/run.py's.

Every gRPC answer is checked: the service's own request counter must count as many OK calls
as h2load counted done (h2load reads HTTP/2 statuses only; a gRPC error is a 200 with a
grpc-status trailer). Writes out/transports.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import BOUNDARY, ROOT, Server, free_port, machine, multipart, sample_pngs

from app.protocols.oip.proto import inference_pb2 as pb

MODEL = "fashion-mnist"
OUTPUTS = ("probabilities", "label")
GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"
LOGS = ROOT / "bench" / "out" / "logs"


def grpc_body(pngs: list[bytes]) -> bytes:
    """One ModelInferRequest as a gRPC message on the wire: flag, length, protobuf."""
    raw = b"".join(struct.pack("<I", len(p)) + p for p in pngs)
    request = pb.ModelInferRequest(
        model_name=MODEL,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="images", datatype="BYTES", shape=[len(pngs)]
            )
        ],
        raw_input_contents=[raw],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in OUTPUTS],
    )
    message = request.SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message


def v2_rest_body(pngs: list[bytes]) -> tuple[bytes, int]:
    raw = b"".join(struct.pack("<I", len(p)) + p for p in pngs)
    header = {
        "inputs": [
            {
                "name": "images",
                "shape": [len(pngs)],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in OUTPUTS],
    }
    head = json.dumps(header).encode()
    return head + raw, len(head)


def h2load(
    url: str, body: Path, headers: list[str], connections: int, duration: int, h1: bool
) -> dict[str, Any]:
    cmd = ["h2load", "-c", str(connections), "-m", "1", "-D", str(duration), "-d", str(body)]
    cmd += ["--warm-up-time", "1"]
    if h1:
        cmd.append("--h1")
    for header in headers:
        cmd += ["-H", header]
    output = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        output,
    )
    assert done, output
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", output)
    return {
        "req_s": float(re.search(r"finished in \S+, ([\d.]+) req/s", output).group(1)),  # type: ignore[union-attr]
        "done": int(done.group(1)),
        "succeeded": int(done.group(2)),
        "errors": int(done.group(3)) + int(done.group(4)),
        "mean_ms": _ms(mean.group(1)) if mean else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def grpc_ok_count(url: str) -> float:
    """The service's count of gRPC ModelInfer calls answered OK (its /metrics)."""
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("latentserve_requests_total{") and f'endpoint="{GRPC_METHOD}"' in line:
            total += float(line.rsplit(" ", 1)[1]) if 'status="OK"' in line else 0.0
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    grpc_port = free_port()
    env = {
        "LATENTSERVE_DEFAULT_MODEL": MODEL,
        "LATENTSERVE_LOG_LEVEL": "warning",
        "LATENTSERVE_GRPC_PORT": str(grpc_port),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    results: dict[str, list[dict[str, Any]]] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        Server.uvicorn("app.main:app_from_env", env, True, LOGS / "transports.log") as server,
    ):
        bodies = {}
        for images in (1, 64):
            pngs = sample_pngs(MODEL, images)
            native = Path(scratch, f"native-{images}")
            native.write_bytes(multipart(pngs))
            rest, head = v2_rest_body(pngs)
            Path(scratch, f"rest-{images}").write_bytes(rest)
            Path(scratch, f"grpc-{images}").write_bytes(grpc_body(pngs))
            bodies[images] = {
                "native /classify": (
                    f"{server.url}/classify?model={MODEL}",
                    native,
                    [f"content-type: multipart/form-data; boundary={BOUNDARY}"],
                    True,
                ),
                "V2 REST": (
                    f"{server.url}/v2/models/{MODEL}/infer",
                    Path(scratch, f"rest-{images}"),
                    [
                        "content-type: application/octet-stream",
                        f"inference-header-content-length: {head}",
                    ],
                    True,
                ),
                "V2 gRPC": (
                    f"http://127.0.0.1:{grpc_port}{GRPC_METHOD}",
                    Path(scratch, f"grpc-{images}"),
                    ["content-type: application/grpc", "te: trailers"],
                    False,
                ),
            }
        for round_ in range(args.rounds):
            for images, rows in bodies.items():
                for connections in (1, 32):
                    for name, (url, body, headers, h1) in rows.items():
                        before = grpc_ok_count(server.url)
                        measured = h2load(url, body, headers, connections, args.duration, h1)
                        if not h1:  # every gRPC call answered OK, not just HTTP 200
                            ok = grpc_ok_count(server.url) - before
                            measured["errors"] += max(0, measured["done"] - int(ok))
                        key = f"{name}|{images}|{connections}"
                        results.setdefault(key, []).append(measured)
                        rate, errors = measured["req_s"], measured["errors"]
                        print(f"round {round_ + 1}: {key}: {rate:.0f} req/s, errors {errors}")
    table = summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": machine(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "rows": table,
    }
    (args.out / "transports.json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(table))
    return 0


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, runs in results.items():
        name, images, connections = key.split("|")
        rates = sorted(r["req_s"] for r in runs)
        median = statistics.median(rates)
        rows.append(
            {
                "protocol": name,
                "images": int(images),
                "connections": int(connections),
                "req_s": median,
                "req_s_range": [rates[0], rates[-1]],
                "images_s": median * int(images),
                "mean_ms": statistics.median(r["mean_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| request | connections | protocol | req/s (median, range) | images/s | mean latency "
        "| errors |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        low, high = r["req_s_range"]
        lines.append(
            f"| {r['images']} PNG | {r['connections']} | {r['protocol']} | {r['req_s']:,.0f} "
            f"({low:,.0f}–{high:,.0f}) | {r['images_s']:,.0f} | {r['mean_ms']:.1f} ms "
            f"| {r['errors']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
