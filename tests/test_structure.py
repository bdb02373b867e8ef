"""House rules that keep the two halves apart (checked, not just written down)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_names(path: Path, top_level_only: bool = False) -> set[str]:
    """The full dotted names a module imports (anywhere, or only at its top level); for
    `from package import module`, package.module too."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    """The top-level packages a module imports (anywhere, or only at its top level)."""
    return {name.split(".")[0] for name in imported_names(path, top_level_only)}


def test_app_never_imports_training() -> None:
    offenders = [p.name for p in (ROOT / "app").rglob("*.py") if "training" in imported_modules(p)]
    assert offenders == []


def test_training_imports_only_the_contract_from_app() -> None:
    """training/ shares app/contract/ (manifest, framing, ood score, index format) and nothing
    else of the service: the exported SavedModels and their manifest are the interface."""
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "training").rglob("*.py")
        for name in imported_names(path)
        if name.split(".")[0] == "app" and not name.startswith("app.contract")
    }
    assert offenders == set()


def test_the_contract_needs_neither_tensorflow_nor_http() -> None:
    for path in (ROOT / "app" / "contract").rglob("*.py"):
        outside = {n for n in imported_names(path) if n.startswith("app.")}
        assert all(n.startswith("app.contract") for n in outside), path
        banned = {"tensorflow", "keras", "fastapi", "starlette"}
        assert not banned & imported_modules(path), path


def test_protocols_never_import_each_other() -> None:
    """Each protocol is a translation over the core; what two share lives below them."""
    protocols = ROOT / "app" / "protocols"
    for package in (p for p in protocols.iterdir() if p.is_dir() and p.name != "__pycache__"):
        for path in package.rglob("*.py"):
            for name in imported_names(path):
                parts = name.split(".")
                if parts[:2] == ["app", "protocols"] and len(parts) > 2:
                    assert parts[2] == package.name, f"{path.relative_to(ROOT)} imports {name}"


def test_the_client_stands_alone() -> None:
    """latentserve/ (the client) never imports the service, training or TensorFlow: its base
    install has none of them. Only `latentserve serve` reaches for app, inside a function."""
    for path in (ROOT / "latentserve").rglob("*.py"):
        assert not {"app", "training", "tensorflow", "keras"} & imported_modules(
            path, top_level_only=True
        ), path
        late = imported_modules(path) - imported_modules(path, top_level_only=True)
        allowed = {
            "cli.py": {"app", "latentserve"},
            "outputs.py": {"pyarrow"},
            "ray_engine.py": {"ray", "app"},  # on the cluster's nodes: latentserve[ray]
        }
        assert late <= allowed.get(path.name, set()), path


def test_exactly_one_app_module_imports_tensorflow() -> None:
    importers = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "app").rglob("*.py")
        if {"tensorflow", "keras"} & imported_modules(p)
    )
    assert importers == ["app/models/inference.py"]


def test_no_print_in_library_code() -> None:
    allowed = {"cli.py", "__main__.py"}  # user-facing command-line output
    offenders = []
    packages = ("app", "training", "latentserve")
    for path in [p for package in packages for p in (ROOT / package).rglob("*.py")]:
        if path.name in allowed or path.parent == ROOT / "training" / "commands":
            continue  # the command line's own output (training/commands: one module each)
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
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "app").rglob("*.py")
        if p.name != "__init__.py" and p.relative_to(ROOT).as_posix() != "app/models/inference.py"
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
