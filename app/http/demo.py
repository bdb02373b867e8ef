"""The demo page at `/`: static files (app/http/static), a client of the HTTP API and nothing more.

Served only with LATENTSERVE_DEMO=true (the default). It loads nothing from elsewhere, so it
works offline, and its Content-Security-Policy keeps it that way: scripts, styles and requests
from this origin only, images also from data: URLs (the API's base64 PNGs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def install_demo(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": POLICY})

    app.mount("/demo", StaticFiles(directory=STATIC), name="demo")
