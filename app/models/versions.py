"""Which versions of a model to serve, with TensorFlow Serving's version policies.

- `latest` (the default): the highest version; `latest:N`: the N highest;
- `all`: every version in the repository;
- `3,5` (TF Serving's `specific`): exactly these versions.

A policy picks from the versions that are available: numbered directories whose version has
not been refused as broken. Hot reload applies it again at every poll, so a new version joins
and only what falls out of the policy is retired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PolicyKind = Literal["latest", "all", "specific"]


@dataclass(frozen=True)
class VersionPolicy:
    kind: PolicyKind = "latest"
    count: int = 1
    """latest: how many of the highest versions."""
    versions: tuple[int, ...] = ()
    """specific: the versions, ascending."""

    @classmethod
    def parse(cls, value: object) -> VersionPolicy:
        """`latest`, `latest:N`, `all` or `V1,V2,...`; ValueError saying what is accepted."""
        if isinstance(value, VersionPolicy):
            return value
        if isinstance(value, dict):  # a model_dump() of the settings, read back
            return cls(value["kind"], value["count"], tuple(value["versions"]))
        text = str(value).strip().lower()
        try:
            if text == "all":
                return cls("all")
            if text == "latest" or text.startswith("latest:"):
                count = int(text.partition(":")[2] or 1)
                if count < 1:
                    raise ValueError
                return cls("latest", count=count)
            versions = sorted({int(part) for part in text.split(",") if part.strip()})
            if not versions or versions[0] < 1:
                raise ValueError
            return cls("specific", versions=tuple(versions))
        except ValueError:
            raise ValueError(
                f"version policy {value!r}: use latest, latest:N (N >= 1), all, or versions "
                "such as 3,5"
            ) from None

    def select(self, available: Iterable[int]) -> list[int]:
        """The versions to serve out of `available`, highest first."""
        ordered = sorted(set(available), reverse=True)
        if self.kind == "latest":
            return ordered[: self.count]
        if self.kind == "all":
            return ordered
        return [v for v in ordered if v in self.versions]

    def __str__(self) -> str:
        if self.kind == "specific":
            return ",".join(map(str, self.versions))
        return f"latest:{self.count}" if self.kind == "latest" and self.count > 1 else self.kind
