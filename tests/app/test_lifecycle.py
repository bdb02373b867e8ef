"""Readiness before and after warm-up, fail-fast start-up, settings validation."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.contract.repository import Manifest, RepositoryError
from app.main import create_app
from app.models.inference import ModelVersion, load_version
from app.settings import Settings
from tests.app.conftest import digit_like, serve, wait_ready


def test_readyz_is_503_until_models_are_warm(settings: Settings) -> None:
    release = threading.Event()

    def gated_loader(path: Path, manifest: Manifest) -> ModelVersion:
        release.wait(timeout=60)
        return load_version(path, manifest)

    with (
        serve(create_app(settings, loader=gated_loader)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["error"]["type"] == "not_ready"
        busy = client.post("/classify", json={"instances": [digit_like(0).tolist()]})
        assert busy.status_code == 503
        assert client.get("/models").status_code == 200  # metadata comes from manifests
        release.set()
        wait_ready(client)
        assert client.get("/readyz").json()["models"] == {"fashion-mnist": 1, "mnist": 1}
        ok = client.post("/classify", json={"instances": [digit_like(0).tolist()]})
        assert ok.status_code == 200


def _copy_repo(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_model_fails_start_up(model_repo: Path, tmp_path: Path) -> None:
    repo = _copy_repo(model_repo, tmp_path / "models")
    weights = next((repo / "mnist" / "1" / "classifier" / "variables").glob("*.data-*"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
    app = create_app(Settings(model_repository=repo))
    with pytest.raises(RepositoryError, match="checksum mismatch"):
        app.state.registry.plan()


def test_missing_configured_model_fails_start_up(model_repo: Path) -> None:
    app = create_app(Settings(model_repository=model_repo, models=["mnist", "cifar"]))
    with pytest.raises(RepositoryError, match="no model 'cifar'"):
        app.state.registry.plan()


def test_incomplete_version_fails_start_up(model_repo: Path, tmp_path: Path) -> None:
    repo = _copy_repo(model_repo, tmp_path / "models")
    (repo / "mnist" / "1" / "manifest.json").unlink()
    with pytest.raises(RepositoryError, match=r"no manifest\.json"):
        create_app(Settings(model_repository=repo)).state.registry.plan()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, model_repo: Path) -> None:
    monkeypatch.setenv("LATENTSERVE_MODEL_REPOSITORY", str(model_repo))
    monkeypatch.setenv("LATENTSERVE_MODELS", "mnist, fashion-mnist")
    monkeypatch.setenv("LATENTSERVE_MAX_IMAGES", "3")
    settings = Settings()
    assert settings.models == ["mnist", "fashion-mnist"]
    assert settings.max_images == 3


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("MAX_IMAGES", "0", "max_images"),
        ("PORT", "99999", "port"),
        ("LOG_LEVEL", "loud", "log_level"),
        ("MODEL_REPOSITORY", "/nonexistent/models", "model_repository"),
        ("MAX_BODY_BYTES", "lots", "max_body_bytes"),
    ],
)
def test_bad_settings_fail_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch, model_repo: Path, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv("LATENTSERVE_MODEL_REPOSITORY", str(model_repo))
    monkeypatch.setenv(f"LATENTSERVE_{name}", value)
    with pytest.raises(ValidationError, match=field):
        Settings()


def test_unknown_setting_is_rejected(model_repo: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(model_repository=model_repo, max_imagez=3)  # type: ignore[call-arg]


def test_a_failed_load_keeps_the_service_unready_and_says_why(settings: Settings) -> None:
    def broken_loader(path: Path, manifest: Manifest) -> ModelVersion:
        raise OSError("SavedModel unreadable")

    with (
        serve(create_app(settings, loader=broken_loader)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for _ in range(100):  # loading runs in the background; wait for it to give up
            response = client.get("/readyz")
            if "failed" in response.json()["error"]["message"]:
                break
            threading.Event().wait(0.05)
        assert response.status_code == 503
        assert "SavedModel unreadable" in response.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200


def test_loaded_models_are_frozen_out_of_the_garbage_collectors_scans(
    settings: Settings,
) -> None:
    """A full collection over TensorFlow's long-lived objects stalls the loop for 100+ ms."""
    import gc

    gc.unfreeze()
    registry = create_app(settings).state.registry
    registry.plan()
    registry.load()
    assert registry.ready
    # Everything alive once the models are loaded is frozen: >100k objects with TensorFlow.
    assert gc.get_freeze_count() > 100_000
    gc.unfreeze()
