"""Which models the service serves, and whether they are loaded yet.

Start-up has two halves: `plan()` reads every manifest and checks every checksum right away
(a missing or corrupt model stops the process before it listens), and `load()` loads and
warms the SavedModels in the background, so /readyz can answer 503 while that happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelNotFound, NotReady
from app.inference import ModelVersion, load_version
from app.repository import Manifest, RepositoryError, latest_version, model_names
from app.settings import Settings

logger = logging.getLogger(__name__)

Loader = Callable[[Path, Manifest], ModelVersion]


@dataclass(frozen=True)
class PlannedModel:
    path: Path
    manifest: Manifest


class ModelRegistry:
    def __init__(self, settings: Settings, loader: Loader = load_version) -> None:
        self._settings = settings
        self._loader = loader
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
