"""How far below hello-world any /classify handler on uvicorn sits on this machine.

    .venv/bin/python bench/bare.py [--rounds 2] [--duration 8]

`app` below is a bare ASGI function doing only the floor's real work: read the body, parse
the multipart upload and decode the PNG with the service's own code (app.pipeline.uploads),
answer ten uniform probabilities with orjson. No access line, metrics, API keys, limits,
query validation or model registry: none of the service's bookkeeping. Its req/s against
FastAPI's hello-world (bench/hello.py) and the no-model floor (bench/floor.py), in the same
run, at 32 connections, bounds what the floor could reach with the leanest handler
(docs/benchmarks.md, "Direct routes").
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import orjson

from app.contract.images import ImageOptions
from app.pipeline.uploads import decode_all, parse_multipart

OPTIONS = ImageOptions(max_pixels=10**8)
CLASSES = 10


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    """Start and stop with nothing to load."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["method"] == "GET":  # the harness's readiness probe
        await _answer(send, b'{"ok":true}')
        return
    content_type = dict(scope["headers"])[b"content-type"].decode("latin-1")
    images = decode_all(parse_multipart(await _body(receive), content_type, 256), OPTIONS)
    row = {"label": 0, "probabilities": [1 / CLASSES] * CLASSES}
    await _answer(send, orjson.dumps({"predictions": [row for _ in images]}))


def main() -> int:
    from harness import ROOT, Server, multipart, run_wrk, sample_pngs, wrk_script

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    post = wrk_script(out, multipart(sample_pngs("fashion-mnist", 1)))
    env = {"LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
           "LATENTSERVE_MODELS": "fashion-mnist", "LATENTSERVE_GRPC_PORT": "0"}  # fmt: skip
    runs = [
        ("hello-world", "bench.hello:app", False, "/", wrk_script(out, None)),
        ("bare ASGI handler", "bench.bare:app", False, "/classify", post),
        ("no-model floor", "bench.floor:app_from_env", True, "/classify", post),
    ]
    req_s: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for _ in range(args.rounds):
        for name, target, factory, path, script in runs:
            log = out / "logs" / f"bare-{name.replace(' ', '-')}.log"
            with Server.uvicorn(target, env, factory, log) as server:
                run_wrk(server.url + path, script, 32, 2)  # warm-up
                result = run_wrk(server.url + path, script, 32, args.duration)
                assert result["errors"] == 0, result
                req_s[name].append(result["req_s"])
    hello = statistics.median(req_s["hello-world"])
    print("| server | c=32 req/s, median (rounds) | × hello-world |\n| --- | --- | --- |")
    for name, values in req_s.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} ({rounds}) | "
              f"{statistics.median(values) / hello:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
