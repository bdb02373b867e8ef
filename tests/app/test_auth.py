"""Optional API keys and CORS, through a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import digit_like, serve, wait_ready

PAYLOAD = {"instances": [digit_like(1).tolist()]}


@pytest.fixture(scope="module")
def secured(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# team keys\nfile-key-2\n\n")
    secure = Settings(
        model_repository=settings.model_repository,
        default_model="mnist",
        api_keys="env-key-1",  # type: ignore[arg-type]  # parsed like the env var
        api_keys_file=keys_file,
        cors_origins="https://app.example",  # type: ignore[arg-type]
    )
    with serve(create_app(secure)) as url:
        yield url


@pytest.fixture
def anonymous(secured: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured, timeout=30) as client:
        wait_ready(client)
        yield client


@pytest.mark.parametrize(
    "headers",
    [{"authorization": "Bearer env-key-1"}, {"x-api-key": "file-key-2"}],
    ids=["bearer-from-env", "x-api-key-from-file"],
)
def test_valid_keys_are_accepted(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    assert anonymous.post("/classify", json=PAYLOAD, headers=headers).status_code == 200
    assert anonymous.get("/models", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"x-api-key": "env-key-"},
        {"authorization": "Basic x"},
    ],
    ids=["none", "wrong-bearer", "prefix-of-a-key", "basic-scheme"],
)
def test_missing_or_wrong_keys_get_401(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    response = anonymous.post("/classify", json=PAYLOAD, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert anonymous.get("/metrics", headers=headers).status_code == 401


def test_health_probes_stay_public(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def test_keys_are_never_in_the_settings_repr(settings: Settings) -> None:
    secure = Settings.model_validate(
        {"model_repository": settings.model_repository, "api_keys": "s3cret-value"}
    )
    assert "s3cret-value" not in repr(secure)
    assert secure.all_api_keys() == ["s3cret-value"]


def test_cors_allows_only_configured_origins(anonymous: httpx.Client, client: httpx.Client) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    allowed = anonymous.options("/classify", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = anonymous.options("/classify", headers={**preflight, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    off = client.get("/healthz", headers={"origin": "https://app.example"})
    assert "access-control-allow-origin" not in off.headers  # CORS is off by default


def test_missing_keys_file_fails_at_start(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="api_keys_file"):
        Settings(model_repository=settings.model_repository, api_keys_file=tmp_path / "nope")
