"""How fast each transport alone can answer one V2 inference call here (issue 26's gRPC target):

    .venv/bin/python bench/grpc_bare.py [--rounds 3] [--duration 8]

Four servers answer bench/transports.py's one-PNG V2 request with a fixed answer, no model,
no bookkeeping:

- `grpc.aio`: grpcio's asyncio server, the one the service runs (app/grpc/server.py);
- `grpc sync`: grpcio's synchronous server, handlers on a thread pool (THREADS);
- `grpc sync + loop`: the same, each call handed to an asyncio loop on its own thread and
  waited for, as the service's batcher would have to be reached from the pool;
- `uvicorn ASGI`: a bare ASGI function on uvicorn reading the V2 REST body and its JSON header.

h2load drives each at 32 connections (HTTP/2 for gRPC, HTTP/1.1 for REST, as bench/transports.py
does), rounds interleaved, each server started fresh. Printed: the median req/s (range) and
the server's CPU cores while loaded. The gRPC servers are checked: each counts the calls it
answered (warm-up included), and that count must be at least h2load's done requests, since
h2load reads HTTP/2 statuses only and a gRPC error is a 200 with a grpc-status trailer.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from app.protocols.oip.proto import inference_pb2 as pb
from app.protocols.oip.proto.inference_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from bench.bare import _answer, _body, lifespan
from bench.harness import Server

THREADS = 8
"""The synchronous server's pool: more threads than cores, fewer than connections."""
CONNECTIONS = 32
ANSWER = pb.ModelInferResponse(
    model_name="fashion-mnist",
    model_version="4",
    outputs=[pb.ModelInferResponse.InferOutputTensor(name="label", datatype="INT64", shape=[1])],
    raw_output_contents=[bytes(8)],
)
REST_ANSWER = b'{"model_name":"fashion-mnist","model_version":"4","outputs":[]}'
COUNT_FILE = "answered"


class Fixed(GRPCInferenceServiceServicer):  # type: ignore[misc]
    """ModelInfer answers ANSWER; `answered` counts the calls."""

    def __init__(self) -> None:
        self.answered = 0

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.answered += 1
        return ANSWER


class FixedAsync(Fixed):
    async def ModelInfer(self, request: Any, context: Any) -> Any:  # type: ignore[override]  # noqa: N802
        self.answered += 1
        return ANSWER


class HandedToLoop(Fixed):
    """Each call awaited on an asyncio loop running on its own thread."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _answer(self) -> Any:
        self.answered += 1
        return ANSWER

    def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        return asyncio.run_coroutine_threadsafe(self._answer(), self.loop).result()


def _report_on_exit(servicer: Fixed, out: Path) -> None:
    def write(*_: object) -> None:
        out.write_text(str(servicer.answered))
        sys.exit(0)

    signal.signal(signal.SIGTERM, write)


async def serve_aio(port: int, out: Path) -> None:
    server = aio.server()
    servicer = FixedAsync()
    add_GRPCInferenceServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    out.write_text(str(servicer.answered))


def serve_sync(port: int, out: Path, servicer: Fixed) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=THREADS))
    add_GRPCInferenceServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    _report_on_exit(servicer, out)
    server.start()
    server.wait_for_termination()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare V2 REST handler: read the body, parse its JSON header, answer fixed bytes."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = await _body(receive)
    header = dict(scope["headers"]).get(b"inference-header-content-length")
    if header is not None:
        orjson.loads(body[: int(header)])
    await _answer(send, REST_ANSWER)


class PortServer(Server):
    """A harness Server that is ready once its port accepts connections (gRPC has no HTTP
    readiness path)."""

    def _wait_ready(self, ready_path: str, in_a_row_needed: int, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on port {self.port}; see {log}")


def main() -> int:
    from transports import grpc_body, h2load, v2_rest_body

    from bench.harness import ROOT, sample_pngs, uvicorn_command

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--serve", choices=["aio", "sync", "sync-loop"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "aio":
        asyncio.run(serve_aio(args.port, args.count))
        return 0
    if args.serve:
        serve_sync(args.port, args.count, Fixed() if args.serve == "sync" else HandedToLoop())
        return 0

    logs = ROOT / "bench" / "out" / "logs"
    png = sample_pngs("fashion-mnist", 1)
    scratch = Path(tempfile.mkdtemp())  # removed at the end
    grpc_file, rest_file = scratch / "grpc", scratch / "rest"
    grpc_file.write_bytes(grpc_body(png))
    rest, head = v2_rest_body(png)
    rest_file.write_bytes(rest)
    grpc_headers = ["content-type: application/grpc", "te: trailers"]
    rest_headers = ["content-type: application/octet-stream",
                    f"inference-header-content-length: {head}"]  # fmt: skip
    kinds = {"grpc.aio": "aio", "grpc sync": "sync", "grpc sync + loop": "sync-loop"}
    names = [*kinds, "uvicorn ASGI"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    cores: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            log = logs / f"grpc-bare-{name.replace(' ', '-').replace('+', 'and')}.log"
            count = scratch / COUNT_FILE
            count.unlink(missing_ok=True)
            if name in kinds:
                cmd = [sys.executable, __file__, "--serve", kinds[name], "--count", str(count)]
                server = PortServer(cmd, {}, "", log)
                url, body, headers, h1 = (
                    f"http://127.0.0.1:{server.port}/inference.GRPCInferenceService/ModelInfer",
                    grpc_file, grpc_headers, False,
                )  # fmt: skip
            else:
                cmd = uvicorn_command("bench.grpc_bare:app", False)
                server = PortServer(cmd, {}, "", log)
                url, body, headers, h1 = (
                    f"{server.url}/v2/models/m/infer", rest_file, rest_headers, True,
                )  # fmt: skip
            with server:
                h2load(url, body, headers, CONNECTIONS, 2, h1)  # warm-up
                cpu, started = server.cpu_seconds(), time.monotonic()
                measured = h2load(url, body, headers, CONNECTIONS, args.duration, h1)
                cores[name].append((server.cpu_seconds() - cpu) / (time.monotonic() - started))
            if name in kinds:
                answered = int(count.read_text())
                assert answered >= measured["done"], (measured, answered)
            assert measured["errors"] == 0, measured
            rates[name].append(measured["req_s"])
            print(f"{name}: {measured['req_s']:.0f} req/s, {cores[name][-1]:.2f} cores")
    shutil.rmtree(scratch)
    base = statistics.median(rates["uvicorn ASGI"])
    print("| server | c=32 req/s, median (range) | × uvicorn ASGI | server cores |")
    print("| --- | ---: | ---: | ---: |")
    for name in names:
        low, high, mid = min(rates[name]), max(rates[name]), statistics.median(rates[name])
        print(f"| {name} | {mid:,.0f} ({low:,.0f}–{high:,.0f}) | {mid / base:.2f} | "
              f"{statistics.median(cores[name]):.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
