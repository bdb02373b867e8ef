"""Where a worker's memory goes: RSS after each step of what the service does at start-up.

    .venv/bin/python bench/memory.py [--models fashion-mnist,mnist,fashion-mnist-10]
        [--runtime tensorflow|litert]

One fresh process, the steps the service takes in its order: Python with the app's modules (no
TensorFlow), TensorFlow imported by app.models.inference (which keeps Keras out), then for each
version its three SavedModels, the composed graphs, the similarity index (usearch HNSW built from
the stored vectors, or opened memory-mapped from the graph cache once it is there), the
out-of-distribution calibration and the warm-up calls, then one 128-image
call per operation (the batcher's largest) and finally glibc's `malloc_trim(0)`, which hands back
what the allocator holds but no object uses. VmRSS is split into anonymous memory (heap, arenas,
tensors) and file-backed pages (the shared libraries' code and data actually touched); VmHWM is the
peak. Prints a markdown table (copied into docs/benchmarks.md). With `--runtime litert` the
steps are LiteRT's (app.models.litert), as the service takes them for a version exported with
LiteRT graphs: the interpreter imported, each version's four operation graphs opened, the same
index and calibration, the warm-up calls, the same 128-image calls."""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS: list[tuple[str, dict[str, float]]] = []


def status() -> dict[str, float]:
    text = Path("/proc/self/status").read_text()
    fields = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    return {f: int(re.search(rf"{f}:\s+(\d+) kB", text).group(1)) / 1024 for f in fields}  # type: ignore[union-attr]


def step(name: str) -> None:
    ROWS.append((name, status()))
    now = ROWS[-1][1]
    print(f"{name:<52} RSS {now['VmRSS']:7.1f} MB (anon {now['RssAnon']:6.1f}, file "
          f"{now['RssFile']:6.1f}), peak {now['VmHWM']:7.1f}", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fashion-mnist,mnist,fashion-mnist-10")
    parser.add_argument("--runtime", choices=("tensorflow", "litert"), default="tensorflow")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import app.main  # noqa: F401  (FastAPI, pydantic, Pillow, usearch: everything but TF)

    step("Python + the app's modules (no TensorFlow)")
    steps = litert_steps if args.runtime == "litert" else tensorflow_steps
    loaded = steps(args.models.split(","))  # kept alive until the last step
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    step("after malloc_trim(0)")
    del loaded
    print()
    print("| step | RSS MB | anonymous | file-backed | peak (VmHWM) |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in ROWS:
        print(f"| {name} | {s['VmRSS']:.0f} | {s['RssAnon']:.0f} | {s['RssFile']:.0f} | "
              f"{s['VmHWM']:.0f} |")  # fmt: skip
    return 0


def litert_steps(names: list[str]) -> list[object]:
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401  (the import, measured)

    step("import the LiteRT interpreter (ai_edge_litert)")
    from app.contract.repository import OPERATION_HEADS, latest_version
    from app.contract.similarity import GraphCache
    from app.models.litert import Graph, LiteRTVersion
    from app.models.loaded import Extras, warm_up
    from app.settings import Settings

    cache = GraphCache(Settings().graph_cache)
    loaded = []
    for name in names:
        path, manifest = latest_version(ROOT / "models", name)
        assert manifest.litert is not None, f"{path}: no LiteRT graphs"
        spec = manifest.litert
        graphs = {
            op: Graph.open(path / spec.files[op], spec.outputs[op], 1) for op in OPERATION_HEADS
        }
        step(f"{name}: four LiteRT graphs opened")
        extras = Extras.load(path, manifest, cache)
        step(f"{name}: similarity index, ood and embedding calibration")
        model = LiteRTVersion(manifest, path, graphs, extras.index, extras.ood, extras.space)
        warm_up(model, path, "LiteRT")
        step(f"{name}: warm-up calls")
        loaded.append(model)
    batch = np.zeros((128, 28, 28), np.uint8)
    for model in loaded:
        for operation in ("classify", "reconstruct", "full"):
            model.run(operation, batch)
    step("128-image calls, every operation of every version")
    return list(loaded)


def tensorflow_steps(names: list[str]) -> list[object]:
    from app.contract.ood import OodScorer
    from app.contract.repository import PARTS, latest_version
    from app.contract.similarity import GraphCache, SimilarityIndex
    from app.models.inference import _compose, configure_threads, tf  # TensorFlow, as the service
    from app.settings import Settings

    step("import tensorflow (as app.models.inference does: without Keras)")
    configure_threads(1)
    # The service's own graph cache: warm after its first start (or `python -m
    # app.models.graphs models`), as it is in the Docker image.
    cache = GraphCache(Settings().graph_cache)
    loaded = []
    for name in names:
        path, manifest = latest_version(ROOT / "models", name)
        modules = {part: tf.saved_model.load(str(path / part)) for part in PARTS}
        step(f"{name}: three SavedModels loaded")
        functions = {part: m.signatures["serving_default"] for part, m in modules.items()}
        composed = _compose(functions, manifest.input_shape)
        step(f"{name}: composed graphs traced")
        if manifest.index:
            index = SimilarityIndex.load(path, manifest.index, cache)
            how = "opened, memory-mapped" if index.from_cache else "built"
            step(f"{name}: similarity index ({manifest.index.size} images) {how}")
        if manifest.ood:
            ood = OodScorer.load(path, manifest.ood)
            step(f"{name}: ood calibration")
        warm = tf.constant(np.zeros((1, *manifest.input_shape), np.uint8))
        for operation in ("classify", "reconstruct", "full"):
            composed[operation](warm)
        functions["encoder"](pixels=warm)
        step(f"{name}: warm-up calls")
        loaded.append((modules, composed, index if manifest.index else None, ood))
    for _, composed, _, _ in loaded:
        batch = tf.constant(np.zeros((128, 28, 28), np.uint8))
        for operation in ("classify", "reconstruct", "full"):
            composed[operation](batch)
    step("128-image calls, every operation of every version")
    return list(loaded)


if __name__ == "__main__":
    sys.exit(main())
