"""Which model versions the service serves, and whether they are loaded yet.

Start-up has two halves: `plan()` reads every manifest the version policy selects and checks
every checksum right away (a missing or corrupt model stops the process before it listens),
and `load()` loads and warms the SavedModels in the background, so /readyz can answer 503
while that happens.

Hot reload (`watch`) polls the repository and applies the version policy again: the blocking
part of taking a new version (verify, load, warm up) runs in a worker thread, and the swap on
the event loop, where requests pick their model, so a request sees a version whole or not at
all. Only versions that fall out of the policy are retired; the others are not touched, so a
request pinned to one of them gets the same outputs before and after a reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.contract.errors import ModelNotFound, NotReady, VersionNotFound
from app.core.jobs import Model
from app.contract.repository import (
    FRAMING,
    MANIFEST,
    Manifest,
    RepositoryError,
    model_names,
    verified_manifest,
    version_dirs,
)
from app.settings import Settings

logger = logging.getLogger(__name__)

Loader = Callable[[Path, Manifest], Model]
Retire = Callable[[Model], None]


@dataclass(frozen=True)
class PlannedVersion:
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


def _check_framing(planned: PlannedVersion) -> None:
    """A version exported for another framing still serves, with a warning: its accuracy on
    uploads that are not clean 28x28 images may differ from what its training measured."""
    recorded = planned.manifest.input.framing
    if recorded != FRAMING:
        logger.warning(
            "%s was exported for framing %d; this service frames uploads with framing %d "
            "(app/contract/framing.py): answers for resized uploads may differ from what it was "
            "measured with",
            planned.path,
            recorded,
            FRAMING,
        )


def _stamp(path: Path) -> float:
    manifest = path / MANIFEST
    return manifest.stat().st_mtime if manifest.exists() else 0.0


class ModelRegistry:
    def __init__(self, settings: Settings, loader: Loader, on_retire: Retire | None = None) -> None:
        self._settings = settings
        self._policy = settings.version_policy
        self._loader = loader
        self._on_retire = on_retire or (lambda model: None)
        self._refused: dict[Path, float] = {}  # version dir -> manifest mtime when refused
        self._last_poll_error: str | None = None
        self._planned: dict[str, dict[int, PlannedVersion]] = {}
        self._models: dict[str, dict[int, Model]] = {}
        self.default_name: str | None = None
        self.ready = False
        self.error: str | None = None  # why loading failed, if it did

    def plan(self) -> None:
        """Validate every version to serve now; raises RepositoryError with the reason.

        With no explicit model list, a directory that holds no version is skipped with a
        warning (as TensorFlow Serving ignores what is not a version); a listed model that is
        missing, a version the policy names that is missing, and any selected version that is
        broken stop the start.
        """
        root = self._settings.model_repository
        explicit = bool(self._settings.models)
        for name in self._settings.models or model_names(root):
            model_dir = root / name
            if not model_dir.is_dir():
                raise RepositoryError(f"no model {name!r} in {root} (have: {model_names(root)})")
            available = {int(path.name): path for path in version_dirs(model_dir)}
            if not available and not explicit:
                logger.warning("skipping %s: it holds no numbered model versions", model_dir)
                continue
            selected = self._policy.select(available)
            if missing := [v for v in self._policy.versions if v not in available]:
                raise RepositoryError(f"{model_dir}: no version {missing} (version_policy)")
            if not selected:
                raise RepositoryError(f"{model_dir}: no numbered version directories")
            self._planned[name] = {
                v: PlannedVersion(available[v], verified_manifest(available[v])) for v in selected
            }
            for planned in self._planned[name].values():
                _check_framing(planned)
        if not self._planned:
            raise RepositoryError(f"no models in {root}")
        self.default_name = self._settings.default_model or sorted(self._planned)[0]
        if self.default_name not in self._planned:
            raise RepositoryError(
                f"default model {self.default_name!r} not among {sorted(self._planned)}"
            )

    def load(self) -> None:
        """Blocking: load and warm every planned version, then mark the registry ready."""
        for name, versions in self._planned.items():
            self._models[name] = {v: self._loader(p.path, p.manifest) for v, p in versions.items()}
        freeze_heap()
        self.ready = True
        logger.info("ready: %s", self.served())

    def get(self, name: str | None, version: int | None = None) -> Model:
        """The model version a request asked for: `version`, or the highest served."""
        name = name or self.default_name
        if name not in self._planned:
            raise ModelNotFound(f"unknown model {name!r}; available: {sorted(self._planned)}")
        if not self.ready:
            raise NotReady(self.error or "models are still loading")
        served = self._models[name]
        if version is None:
            return served[max(served)]
        if version not in served:
            raise VersionNotFound(
                f"model {name!r} has no served version {version}; served: "
                f"{sorted(served, reverse=True)} (version_policy {self._policy})"
            )
        return served[version]

    def names(self) -> list[str]:
        return sorted(self._planned)

    def versions(self, name: str) -> dict[int, Manifest]:
        """The manifests of `name`'s served versions, highest first (ModelNotFound if none)."""
        if name not in self._planned:
            raise ModelNotFound(f"unknown model {name!r}; available: {sorted(self._planned)}")
        planned = self._planned[name]
        return {v: planned[v].manifest for v in sorted(planned, reverse=True)}

    def served(self) -> dict[str, list[int]]:
        """Every model's served versions, highest first."""
        return {name: list(self.versions(name)) for name in self.names()}

    def _available(self, name: str) -> dict[int, Path]:
        """Blocking (reads the disk): version dirs of `name` not refused as they are now."""
        found = {}
        for path in version_dirs(self._settings.model_repository / name):
            if self._refused.get(path) != _stamp(path):
                found[int(path.name)] = path
        return found

    def _prepare(self, name: str, path: Path) -> tuple[Model, Manifest] | None:
        """Blocking: verify, load and warm a version; None (logged once) if it is broken."""
        stamp = _stamp(path)
        try:
            manifest = verified_manifest(path)
            _check_framing(PlannedVersion(path, manifest))
            return self._loader(path, manifest), manifest
        except Exception as err:
            self._refused[path] = stamp
            served = sorted(self._models.get(name, {}), reverse=True)
            logger.warning("refusing %s: %s; still serving versions %s", path, err, served)
            return None

    async def _reconcile(self, name: str) -> None:
        """Apply the policy to what is on disk now: load what joins, then retire what left."""
        available = await asyncio.to_thread(self._available, name)
        served = self._models[name]
        staged: dict[int, tuple[Model, PlannedVersion]] = {}
        while True:
            desired = self._policy.select(available)
            missing = [v for v in desired if v not in served and v not in staged]
            if not missing:
                break
            for version in missing:
                path = available[version]
                prepared = await asyncio.to_thread(self._prepare, name, path)
                if prepared is None:
                    del available[version]  # broken: the policy picks again without it
                    break
                model, manifest = prepared
                staged[version] = (model, PlannedVersion(path, manifest))
        if not desired:
            return  # nothing servable on disk (say, mid-redeploy): keep what is served
        self._swap(name, desired, staged)

    def _swap(
        self, name: str, desired: list[int], staged: dict[int, tuple[Model, PlannedVersion]]
    ) -> None:
        """On the event loop: serve the staged versions, retire those outside `desired`."""
        served, planned = self._models[name], self._planned[name]
        for version, (model, plan) in staged.items():
            if version in desired:
                served[version], planned[version] = model, plan
                logger.info("now serving %s version %d from %s", name, version, plan.path)
        for version in [v for v in served if v not in desired]:
            old = served.pop(version)
            planned.pop(version)
            logger.info("retiring %s version %d (version_policy %s)", name, version, self._policy)
            self._on_retire(old)  # its queued work drains; nothing new goes to it

    async def poll(self) -> None:
        """Apply the version policy to every served model once."""
        before = self.served()
        for name in self.names():
            await self._reconcile(name)
        if self.served() != before:
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
