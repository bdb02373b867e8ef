"""Which models the service serves, and whether they are loaded yet.

Start-up has two halves: `plan()` reads every manifest and checks every checksum right away
(a missing or corrupt model stops the process before it listens), and `load()` loads and
warms the SavedModels in the background, so /readyz can answer 503 while that happens.

Hot reload (`watch`) polls the repository; the blocking part of taking a new version (verify,
load, warm up) runs in a worker thread, and the swap itself on the event loop, where requests
pick their model, so a request sees the old version or the new, never a mix.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelNotFound, NotReady
from app.jobs import Model
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

Loader = Callable[[Path, Manifest], Model]
Retire = Callable[[Model], None]


@dataclass(frozen=True)
class PlannedModel:
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class Candidate:
    """A newer version found on disk, and the manifest time stamp it was found with."""

    name: str
    path: Path
    stamp: float


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


def _manifest_stamp(path: Path) -> float:
    manifest = path / MANIFEST
    return manifest.stat().st_mtime if manifest.exists() else 0.0


class ModelRegistry:
    def __init__(self, settings: Settings, loader: Loader, on_retire: Retire | None = None) -> None:
        self._settings = settings
        self._loader = loader
        self._on_retire = on_retire or (lambda model: None)
        self._refused: dict[Path, float] = {}  # version dir -> manifest mtime when refused
        self._last_poll_error: str | None = None
        self._models: dict[str, Model] = {}
        self.planned: dict[str, PlannedModel] = {}
        self.default_name: str | None = None
        self.ready = False
        self.error: str | None = None  # why loading failed, if it did

    def plan(self) -> None:
        """Validate every model to serve now; raises RepositoryError with the reason.

        With no explicit model list, a directory that holds no version is skipped with a
        warning (as TensorFlow Serving ignores what is not a version); a listed model that is
        missing, and any model whose newest version is broken, stops the start.
        """
        root = self._settings.model_repository
        explicit = bool(self._settings.models)
        for name in self._settings.models or model_names(root):
            if not explicit and not version_dirs(root / name):
                logger.warning("skipping %s: it holds no numbered model versions", root / name)
                continue
            path, manifest = latest_version(root, name)
            self.planned[name] = PlannedModel(path, manifest)
        if not self.planned:
            raise RepositoryError(f"no models in {root}")
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

    def get(self, name: str | None) -> Model:
        name = name or self.default_name
        if name not in self.planned:
            raise ModelNotFound(f"unknown model {name!r}; available: {sorted(self.planned)}")
        if not self.ready:
            raise NotReady(self.error or "models are still loading")
        return self._models[name]

    def manifests(self) -> dict[str, Manifest]:
        return {name: planned.manifest for name, planned in sorted(self.planned.items())}

    def candidates(self) -> list[Candidate]:
        """Blocking (reads the disk): newer versions than the ones served, not yet refused."""
        found = []
        for name, planned in self.planned.items():
            versions = version_dirs(self._settings.model_repository / name)
            if versions and int(versions[0].name) > planned.manifest.version:
                stamp = _manifest_stamp(versions[0])
                if self._refused.get(versions[0]) != stamp:
                    found.append(Candidate(name, versions[0], stamp))
        return found

    def prepare(self, candidate: Candidate) -> tuple[Model, Manifest] | None:
        """Blocking: verify, load and warm a candidate; None (logged once) if it is broken."""
        try:
            manifest = verified_manifest(candidate.path)
            return self._loader(candidate.path, manifest), manifest
        except Exception as err:
            self._refused[candidate.path] = candidate.stamp
            served = self.planned[candidate.name].manifest.version
            logger.warning("refusing %s: %s; still serving version %d", candidate.path, err, served)
            return None

    def swap(self, candidate: Candidate, model: Model, manifest: Manifest) -> None:
        """On the event loop: serve `model` from now on and retire the version it replaces."""
        old = self._models.get(candidate.name)
        self._models[candidate.name] = model
        self.planned[candidate.name] = PlannedModel(candidate.path, manifest)
        logger.info("now serving %s version %d from %s", model.name, model.version, candidate.path)
        if old is not None:
            self._on_retire(old)  # its queued work drains; nothing new goes to it

    async def poll(self) -> None:
        """Take every new complete version in the repository (once)."""
        for candidate in await asyncio.to_thread(self.candidates):
            prepared = await asyncio.to_thread(self.prepare, candidate)
            if prepared is not None:
                self.swap(candidate, *prepared)
                await asyncio.to_thread(freeze_heap)

    async def watch(self, interval_s: float) -> None:
        """Poll the repository every interval_s until cancelled; a failed poll (say, a model
        directory removed while it was read) is logged once and tried again next time."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.ready:
                continue
            try:
                await self.poll()
                self._last_poll_error = None
            except Exception as err:
                message = f"{type(err).__name__}: {err}"
                if message != self._last_poll_error:
                    logger.warning("repository poll failed (%s); serving continues", message)
                self._last_poll_error = message
