"""House rules that keep the two halves apart (checked, not just written down)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_app_never_imports_training() -> None:
    offenders = [p.name for p in (ROOT / "app").rglob("*.py") if "training" in imported_modules(p)]
    assert offenders == []


def test_exactly_one_app_module_imports_tensorflow() -> None:
    importers = sorted(
        p.name
        for p in (ROOT / "app").rglob("*.py")
        if {"tensorflow", "keras"} & imported_modules(p)
    )
    assert importers == ["inference.py"]


def test_no_print_in_library_code() -> None:
    allowed = {"cli.py", "__main__.py"}  # user-facing command-line output
    offenders = []
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "training").rglob("*.py")]:
        if path.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
