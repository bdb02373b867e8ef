"""Optional API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

Keys come from LATENTSERVE_API_KEYS and/or LATENTSERVE_API_KEYS_FILE (one per line). With no
keys configured the dependency is not installed, so OpenAPI advertises no auth. Comparison is
constant-time over equal-length digests, every configured key is compared, and keys never reach
logs or reprs (SecretStr).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from app.contract.errors import Unauthorized

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_digests(keys: list[str]) -> list[bytes]:
    return [_digest(key) for key in keys if key]


def is_valid(given: str, digests: list[bytes]) -> bool:
    candidate = _digest(given)
    matches = [hmac.compare_digest(candidate, digest) for digest in digests]  # all, no early exit
    return any(matches)


def presented_key(headers: Headers) -> str | None:
    """The key a request presents: `Authorization: Bearer <key>` (scheme in any case), else
    `X-API-Key`, as FastAPI's HTTPBearer and APIKeyHeader read them."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def check_api_key(headers: Headers, digests: list[bytes]) -> None:
    given = presented_key(headers)
    if not given or not is_valid(given, digests):
        raise Unauthorized("missing or invalid API key (Authorization: Bearer or X-API-Key)")


async def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> None:
    """The routes' dependency. Its two parameters put both schemes into OpenAPI; the check
    itself is `check_api_key`, which the direct routes (app/http/direct.py) call as well."""
    check_api_key(request.headers, request.app.state.api_key_digests)
