"""Which models the service serves, and whether they are loaded yet.

Start-up has two halves: `plan()` reads every manifest and checks every checksum right away
(a missing or corrupt model stops the process before it listens), and `load()` loads and
warms the SavedModels in the background, so /readyz can answer 503 while that happens.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelNotFound, NotReady
from app.inference import ModelVersion, load_version
from app.repository import (
    MANIFEST,
    Manifest,
    RepositoryError,
    latest_version,
    model_names,
    verified_manifest,
    version_dirs,
)
from app.settings import Settings

logger = logging.getLogger(__name__)

Loader = Callable[[Path, Manifest], ModelVersion]
Retire = Callable[[ModelVersion], None]


@dataclass(frozen=True)
class PlannedModel:
    path: Path
    manifest: Manifest


def freeze_heap() -> None:
    """Take every object alive now out of the cyclic garbage collector's scans.

    TensorFlow and the loaded SavedModels leave about 360,000 long-lived tracked objects; a
    full collection then takes 100-200 ms here, and under load one comes every few seconds,
    holding the GIL and stalling every in-flight request (docs/benchmarks.md, p99). Frozen
    objects are still freed by reference counting; unfreezing first lets a retired version's
    reference cycles be collected at the next swap.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    logger.debug("froze %d objects out of the garbage collector's scans", gc.get_freeze_count())


class ModelRegistry:
    def __init__(
        self, settings: Settings, loader: Loader = load_version, on_retire: Retire | None = None
    ) -> None:
        self._settings = settings
        self._loader = loader
        self._on_retire = on_retire or (lambda model: None)
        self._refused: dict[Path, float] = {}  # version dir -> manifest mtime when refused
        self._models: dict[str, ModelVersion] = {}
        self.planned: dict[str, PlannedModel] = {}
        self.default_name: str | None = None
        self.ready = False
        self.error: str | None = None  # why loading failed, if it did

    def plan(self) -> None:
        """Validate every configured model now; raises RepositoryError with the reason."""
        root = self._settings.model_repository
        names = self._settings.models or model_names(root)
        if not names:
            raise RepositoryError(f"no models in {root}")
        for name in names:
            path, manifest = latest_version(root, name)
            self.planned[name] = PlannedModel(path, manifest)
        self.default_name = self._settings.default_model or sorted(self.planned)[0]
        if self.default_name not in self.planned:
            raise RepositoryError(
                f"default model {self.default_name!r} not among {sorted(self.planned)}"
            )

    def load(self) -> None:
        """Blocking: load and warm every planned model, then mark the registry ready."""
        for name, planned in self.planned.items():
            self._models[name] = self._loader(planned.path, planned.manifest)
        freeze_heap()
        self.ready = True
        logger.info("ready: %s", {n: m.version for n, m in self._models.items()})

    def get(self, name: str | None) -> ModelVersion:
        name = name or self.default_name
        if name not in self.planned:
            raise ModelNotFound(f"unknown model {name!r}; available: {sorted(self.planned)}")
        if not self.ready:
            raise NotReady(self.error or "models are still loading")
        return self._models[name]

    def manifests(self) -> dict[str, Manifest]:
        return {name: planned.manifest for name, planned in sorted(self.planned.items())}

    def newer_versions(self) -> list[tuple[str, Path]]:
        """Served models whose repository now holds a higher version than the one served."""
        found = []
        for name, planned in self.planned.items():
            versions = version_dirs(self._settings.model_repository / name)
            if versions and int(versions[0].name) > planned.manifest.version:
                found.append((name, versions[0]))
        return found

    def try_swap(self, name: str, path: Path) -> bool:
        """Blocking: verify, load and warm `path`, then serve it instead of the current version.

        A broken, incomplete or checksum-mismatched version is refused with one log line (again
        only if its manifest changes) and the current version keeps serving.
        """
        manifest_file = path / MANIFEST
        stamp = manifest_file.stat().st_mtime if manifest_file.exists() else 0.0
        if self._refused.get(path) == stamp:
            return False
        try:
            manifest = verified_manifest(path)
            model = self._loader(path, manifest)
        except Exception as err:
            self._refused[path] = stamp
            logger.warning(
                "refusing %s: %s; still serving version %d",
                path,
                err,
                self.planned[name].manifest.version,
            )
            return False
        old = self._models.get(name)
        # One assignment each: a request sees either the old version or the new, never a mix.
        self._models[name] = model
        self.planned[name] = PlannedModel(path, manifest)
        logger.info("now serving %s version %d from %s", name, manifest.version, path)
        if old is not None:
            self._on_retire(old)  # its queued work drains; nothing new goes to it
        freeze_heap()
        return True

    async def watch(self, interval_s: float) -> None:
        """Poll the repository for new versions until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.ready:
                continue
            for name, path in self.newer_versions():
                await asyncio.to_thread(self.try_swap, name, path)
