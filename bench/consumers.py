"""What embedding consumers get, measured in one run (`make bench` runs it after bench/run.py):

    .venv/bin/python bench/consumers.py [--images 60000] [--out bench/out]

1. Bulk embedding: `latentserve embed` over a folder of Fashion-MNIST training images as PNG
   files (wall time of the whole command, start-up and output included), against the
   service's own /embed with 256 PNGs per request under wrk (8 connections), same server,
   same run: the command's images/s over the service's.
2. Similarity search on the shipped fashion-mnist index, in-process: the 10,000 test images
   as queries against the 60,000 training images; recall@10 of the HNSW graph against exact
   search over the same stored vectors, and against exact search in the raw 1568-dim latent
   space; 10-NN accuracy; query latency one at a time and in batches of 256.
3. Memory: peak RSS of the service serving 1, 2 and 3 versions of fashion-mnist (copies of
   the shipped version), so the cost of each extra version shows.
Writes out/consumers.json and prints a markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Server, machine, multipart, run_wrk, sample_pngs, wrk_script

APP = "app.main:app_from_env"
LOGS = ROOT / "bench" / "out" / "logs"

MODEL = "fashion-mnist"
ENV = {
    "LATENTSERVE_DEFAULT_MODEL": MODEL,
    "LATENTSERVE_LOG_LEVEL": "warning",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def bulk(images: int, out: Path, duration: int) -> dict[str, Any]:
    from training.datasets import load_dataset

    folder = out / "bulk-images"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, image in enumerate(load_dataset(MODEL).x_train[:images]):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    target = out / "bulk.parquet"
    env = {**ENV, "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models")}
    with Server.uvicorn(APP, env, True, LOGS / "consumers.log") as server:
        body = multipart(sample_pngs(MODEL, 256))
        service = run_wrk(f"{server.url}/embed", wrk_script(out, body), 8, duration)
        npy_script = wrk_script(out, body, {"Accept": "application/x-npy"})
        service_npy = run_wrk(f"{server.url}/embed", npy_script, 8, duration)
        target.unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        command = [str(Path(sys.executable).parent / "latentserve"), "embed", str(folder)]
        command += ["--out", str(target), "--model", MODEL, "--url", server.url]
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    service_images_s = service["req_s"] * 256
    service_npy_images_s = service_npy["req_s"] * 256
    return {
        "images": images,
        "cli_seconds": seconds,
        "cli_images_s": images / seconds,
        "cli_cpu_user_s": after.ru_utime - before.ru_utime,
        "cli_cpu_system_s": after.ru_stime - before.ru_stime,
        "service_images_s": service_images_s,
        "service_npy_images_s": service_npy_images_s,
        "ratio": images / seconds / service_images_s,
        "ratio_npy": images / seconds / service_npy_images_s,
    }


def similarity() -> dict[str, Any]:
    from app.contract.repository import latest_version
    from app.models.inference import load_version
    from training.datasets import load_dataset

    model = load_version(*latest_version(ROOT / "models", MODEL))
    index = model.index
    assert index is not None
    dataset = load_dataset(MODEL)
    encode = lambda x: np.concatenate([model.encode(x[i : i + 512]) for i in range(0, len(x), 512)])  # noqa: E731
    train, test = encode(dataset.x_train), encode(dataset.x_test)
    found = index.search(test, 10)
    hits = np.array([[int(i.split("/")[1]) for i in row] for row in found.ids])
    with np.load(model.path / index.spec.file) as reference:
        stored = reference["vectors"].astype(np.float32)
        mean, projection = reference["mean"], reference["projection"]
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    queries = (test - mean) @ projection
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_index = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
    raw = train / np.linalg.norm(train, axis=1, keepdims=True)
    exact_raw = np.argsort(-((test / np.linalg.norm(test, axis=1, keepdims=True)) @ raw.T), axis=1)[
        :, :10
    ]

    def recall(truth: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hits, truth, strict=True)]))

    votes = dataset.y_train[hits]
    predicted = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    one = []
    for query in test[:2000]:
        started = time.perf_counter()
        index.search(query[None], 10)
        one.append(time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(test), 256):
        index.search(test[start : start + 256], 10)
    batched = (time.perf_counter() - started) / len(test)
    return {
        "references": index.size,
        "queries": len(test),
        "recall_vs_exact_index_space": recall(exact_index),
        "recall_vs_exact_raw_latents": recall(exact_raw),
        "knn_accuracy": float(np.mean(predicted == dataset.y_test)),
        "head_accuracy": float(model.manifest.metrics["accuracy"]),
        "query_us_p50": float(np.percentile(one, 50) * 1e6),
        "query_us_p99": float(np.percentile(one, 99) * 1e6),
        "query_us_batched": batched * 1e6,
    }


def memory() -> dict[str, float]:
    peaks = {}
    with tempfile.TemporaryDirectory() as temp:
        repo = Path(temp) / "models"
        source = ROOT / "models" / MODEL / "4"
        for copies in (1, 2, 3):
            target = repo / MODEL / str(copies)
            shutil.copytree(source, target)
            manifest = json.loads((target / "manifest.json").read_text())
            manifest["version"] = copies
            (target / "manifest.json").write_text(json.dumps(manifest))
            env = {
                **ENV,
                "LATENTSERVE_MODEL_REPOSITORY": str(repo),
                "LATENTSERVE_VERSION_POLICY": "all",
            }
            with Server.uvicorn(APP, env, True, LOGS / "consumers.log") as server:
                for version in range(1, copies + 1):  # every version answers once
                    server_post = f"{server.url}/classify?version={version}"
                    run_wrk(
                        server_post, wrk_script(Path(temp), multipart(sample_pngs(MODEL, 1))), 1, 1
                    )
            peaks[str(copies)] = server.peak_mb
    return peaks


def table(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]


def markdown(results: dict[str, Any]) -> str:
    b, s, m = results["bulk"], results["similarity"], results["memory_mb"]
    bulk_rows = [
        (
            "the service: /embed, 256 PNGs per request, JSON answers (wrk, 8 connections)",
            f"{b['service_images_s']:.0f}",
        ),
        (
            "the service: the same, .npy answers (`Accept: application/x-npy`)",
            f"{b['service_npy_images_s']:.0f}",
        ),
        (
            f"`latentserve embed`: {b['images']:,} PNG files to Parquet, {b['cli_seconds']:.1f} s "
            f"(its CPU: {b['cli_cpu_user_s']:.1f} s user, {b['cli_cpu_system_s']:.1f} s system)",
            f"{b['cli_images_s']:.0f}",
        ),
        ("ratio to the JSON row (goal ≥ 0.80)", f"{b['ratio']:.2f}"),
        ("ratio to the .npy row (what the command itself asks for)", f"{b['ratio_npy']:.2f}"),
    ]
    search_rows = [
        (
            "recall@10: HNSW vs exact search over the stored vectors (goal ≥ 0.95)",
            f"{s['recall_vs_exact_index_space']:.4f}",
        ),
        (
            "recall@10: HNSW vs exact cosine search over the raw 1568-dim latents",
            f"{s['recall_vs_exact_raw_latents']:.4f}",
        ),
        (
            f"10-NN accuracy on the test split (the head: {s['head_accuracy']:.4f})",
            f"{s['knn_accuracy']:.4f}",
        ),
        ("one query at a time, p50 / p99", f"{s['query_us_p50']:.0f} / {s['query_us_p99']:.0f} µs"),
        ("batches of 256, per query", f"{s['query_us_batched']:.1f} µs"),
    ]
    memory_rows = [
        (n, f"{mb:.0f} MB" + ("" if n == "1" else f" ({mb - m[str(int(n) - 1)]:+.0f} MB)"))
        for n, mb in m.items()
    ]
    lines = [
        f"Machine: {results['machine']}; model `{MODEL}` version 4.",
        "",
        *table(("bulk embedding", "images/s"), bulk_rows),
        "",
        *table(
            (f"similarity: {s['queries']:,} test queries, {s['references']:,} references", ""),
            search_rows,
        ),
        "",
        *table(("versions served", "peak RSS (change)"), memory_rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = {
        "machine": machine(),
        "bulk": bulk(args.images, args.out, args.duration),
        "similarity": similarity(),
        "memory_mb": memory(),
    }
    (args.out / "consumers.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "consumers.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
