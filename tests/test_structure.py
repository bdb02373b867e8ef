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


def test_no_app_module_but_inference_imports_tensorflow() -> None:
    """Importing any other module of the service (the factory included) in a fresh process
    leaves TensorFlow unloaded: it comes in only when a service starts its default loader."""
    import subprocess
    import sys

    modules = sorted(
        f"app.{p.stem}" for p in (ROOT / "app").glob("*.py") if p.stem not in ("inference",)
    )
    modules.append("bench.floor")  # the no-model floor serves without TensorFlow
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert len(modules) > 15
    assert result.stdout.strip() == ""
