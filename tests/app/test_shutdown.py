"""SIGTERM: stop accepting, finish every request in flight, exit 0 (a real `python -m app`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.app.conftest import digit_like, png_bytes
from tests.conftest import free_port

IN_FLIGHT = 50
BOUNDARY = "shutdowntest"


def test_sigterm_finishes_requests_in_flight(model_repo: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LATENTSERVE_MODEL_REPOSITORY": str(model_repo),
        "LATENTSERVE_PORT": str(port),
        "LATENTSERVE_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([sys.executable, "-m", "app"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        statuses = asyncio.run(_requests_across_sigterm(url, server))
        assert statuses == [200] * IN_FLIGHT
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()


async def _requests_across_sigterm(url: str, server: subprocess.Popen[bytes]) -> list[int]:
    release = asyncio.Event()
    part = png_bytes(digit_like(3))
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    async def slow_body() -> AsyncIterator[bytes]:
        yield head + part[:10]  # the request has started: headers and some body are in
        await release.wait()
        yield part[10:] + tail

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        requests = [
            asyncio.create_task(
                client.post(
                    "/classify",
                    content=slow_body(),
                    headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
            )
            for _ in range(IN_FLIGHT)
        ]
        await asyncio.sleep(1.0)  # all 50 are mid-upload
        server.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the server is now shutting down
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
                await fresh.get("/healthz")
            refused = False
        except httpx.TransportError:
            refused = True
        release.set()
        responses = await asyncio.gather(*requests)
    assert refused, "a new connection was accepted after SIGTERM"
    return [r.status_code for r in responses]
