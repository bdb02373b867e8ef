"""What the service accepts of a request body, enforced before and while it arrives (pure ASGI
middleware): its size, and that it is not compressed.

A declared Content-Length over the limit is refused before any of the body is read; a
chunked or lying body is cut off as soon as the running total passes the limit. A body with a
Content-Encoding (gzip, deflate, br, ...) is a 415: no route decompresses, and reading
compressed bytes as an image or JSON would only fail later with a less helpful message.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.contract.errors import PayloadTooLarge, ServiceError, UnsupportedMediaType
from app.http.errors import render

IDENTITY = {"", "identity"}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _message(self) -> str:
        return f"request body exceeds {self.max_body_bytes} bytes (max_body_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refused(dict(scope["headers"]))
        if refused is not None:
            await render(refused, scope["path"])(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _refused(self, headers: dict[bytes, bytes]) -> ServiceError | None:
        """Why the request's headers alone rule its body out, if they do."""
        encoding = headers.get(b"content-encoding", b"").decode("latin-1").strip().lower()
        if encoding not in IDENTITY:
            return UnsupportedMediaType(
                f"Content-Encoding {encoding!r} is not supported; send the body uncompressed"
            )
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            return PayloadTooLarge(self._message())
        return None
