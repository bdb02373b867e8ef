"""What each embedding encoding and `dimensions` keep (`make bench` runs it):

    .venv/bin/python bench/encodings.py [--model-dir models/fashion-mnist/4] [--queries 1000]

The Fashion-MNIST test set (10,000 images) embedded by the shipped encoder, encoded exactly as
the service encodes them (app.contract.embedding, the version's own fitted part), and searched
exhaustively: recall@10 of each encoding against exact Euclidean search over the float32
latents /embed returns (the first `--queries` test images as queries, each against the other
9,999), and the bytes per embedding in .npy and in JSON. Binary codes are searched by Hamming
distance, alone and with the top 100 rescored by the float32 distance. The reduced dimensions
are also measured whitened, the alternative the issue named, to show why the service does not
whiten them, and along the principal axes of the differences between neighbours (a projection
fitted to keep local distances rather than the overall spread), to show whether another
linear projection would keep more of the neighbours than plain PCA. Writes out/encodings.json
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.contract.embedding import EmbeddingSpace, encode, fit_space
from app.contract.repository import read_manifest

ROOT = Path(__file__).resolve().parents[1]
K = 10
RESCORED = 100
NEIGHBOURS = 50  # per point, for the neighbour-difference axes
NEIGHBOUR_SAMPLE = 5000  # training latents they are fitted on
DIMENSIONS = (16, 32, 64, 128)


def latents_of(version_dir: Path, split: str) -> np.ndarray:
    import tensorflow as tf

    from training.datasets import load_dataset

    encoder = tf.saved_model.load(str(version_dir / "encoder")).signatures["serving_default"]
    dataset = load_dataset(read_manifest(version_dir).dataset.name)
    images = dataset.x_test if split == "test" else dataset.x_train
    chunks = [encoder(pixels=tf.constant(images[i : i + 500]))["latent"].numpy()
              for i in range(0, len(images), 500)]  # fmt: skip
    return np.concatenate(chunks).astype(np.float32)


def top_k(distances: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest distances per row, nearest first."""
    part = np.argpartition(distances, k, axis=1)[:, :k]
    order = np.take_along_axis(distances, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def l2(queries: np.ndarray, base: np.ndarray, queried: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, each query's own row excluded (set to infinity)."""
    q, b = queries.astype(np.float64), base.astype(np.float64)
    distances = (q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None, :]
    distances[np.arange(len(q)), queried] = np.inf
    return distances


def hamming(codes: np.ndarray, queried: np.ndarray, count: int) -> np.ndarray:
    signs = np.unpackbits(codes, axis=1, count=count).astype(np.float32) * 2 - 1
    distances = (count - signs[: len(queried)] @ signs.T) / 2
    distances[np.arange(len(queried)), queried] = np.inf
    return distances


def neighbour_axes(latents: np.ndarray) -> np.ndarray:
    """(D, D) principal axes of `latent - neighbour` over each sampled training latent's
    NEIGHBOURS nearest, strongest first: the directions in which near latents differ."""
    rng = np.random.default_rng(0)
    sample = latents[rng.permutation(len(latents))[:NEIGHBOUR_SAMPLE]].astype(np.float64)
    everyone = np.arange(len(sample))
    scatter = np.zeros((sample.shape[1], sample.shape[1]))
    for start in range(0, len(sample), 500):
        rows = everyone[start : start + 500]
        near = top_k(l2(sample[rows], sample, rows), NEIGHBOURS)
        differences = (sample[rows][:, None, :] - sample[near]).reshape(-1, sample.shape[1])
        scatter += differences.T @ differences
    values, vectors = np.linalg.eigh(scatter)
    return np.asarray(vectors[:, np.argsort(values)[::-1]])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "fashion-mnist" / "4")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    manifest = read_manifest(args.model_dir)
    assert manifest.embedding is not None, f"{args.model_dir} has no embedding part"
    space = EmbeddingSpace.load(args.model_dir, manifest.embedding)
    latents = latents_of(args.model_dir, "test")
    queried = np.arange(args.queries)
    exact = l2(latents[queried], latents, queried)
    truth = top_k(exact, K)
    train = latents_of(args.model_dir, "train")
    dim = latents.shape[1]
    rows: list[dict[str, Any]] = []

    def row(
        name: str, dims: int, encoding: str, found: np.ndarray, explained: float | None
    ) -> None:
        encoded = encode(latents[:100], space, encoding, None if dims == dim else dims)  # type: ignore[arg-type]
        json_bytes = (
            sum(len(r) + 3 for r in encoded.base64_rows())
            if encoding == "base64"
            else len(orjson.dumps(encoded.values, option=orjson.OPT_SERIALIZE_NUMPY))
        ) / 100
        rows.append(
            {
                "embedding": name,
                "dimensions": dims,
                "encoding": encoding,
                "npy_bytes": int(encoded.values[0].nbytes),
                "json_bytes": round(json_bytes),
                "recall_at_10": round(recall(found, truth), 4),
                "explained_variance": explained,
            }
        )

    row("float32 latent", dim, "float32", truth, 1.0)
    row("base64 latent", dim, "base64", truth, 1.0)
    int8 = encode(latents, space, "int8")
    dequantised = int8.values.astype(np.float32) * np.float32(int8.scale)
    row("int8 latent", dim, "int8", top_k(l2(dequantised[queried], dequantised, queried), K), 1.0)
    codes = encode(latents, space, "binary").values
    by_bits = hamming(codes, queried, dim)
    row("binary latent, Hamming", dim, "binary", top_k(by_bits, K), None)
    row("binary latent, top 100 rescored", dim, "binary", rescored(by_bits, exact), None)
    explained = manifest.embedding.explained_variance
    for k in DIMENSIONS:
        reduced = space.reduce(latents, k)
        share = explained.get(str(k))
        row(
            f"first {k} axes", k, "float32", top_k(l2(reduced[queried], reduced, queried), K), share
        )
        if k == 64:
            row(f"first {k} axes, top 100 rescored", k, "float32",
                rescored(l2(reduced[queried], reduced, queried), exact), share)  # fmt: skip
            quantised = encode(latents, space, "int8", k)
            values = quantised.values.astype(np.float32) * np.float32(quantised.scale)
            row(
                f"first {k} axes, int8",
                k,
                "int8",
                top_k(l2(values[queried], values, queried), K),
                share,
            )
            whitened = reduced / space.component_std[:k]
            found = top_k(l2(whitened[queried], whitened, queried), K)
            rows.append({**rows[-2], "embedding": f"first {k} axes, whitened (not served)",
                         "recall_at_10": round(recall(found, truth), 4)})  # fmt: skip
            local = (latents - space.mean) @ neighbour_axes(train)[:, :k]
            found = top_k(l2(local[queried], local, queried), K)
            rows.append({**rows[-3], "embedding": f"first {k} neighbour-difference axes "
                         "(not served)", "recall_at_10": round(recall(found, truth), 4),
                         "explained_variance": None})  # fmt: skip
        if k == 128:
            bits = encode(latents, space, "binary", k).values
            by_reduced_bits = hamming(bits, queried, k)
            row(f"first {k} axes, binary, top 100 rescored", k, "binary",
                rescored(by_reduced_bits, exact), share)  # fmt: skip
    # How many axes the 0.95 would take: a longer fit of the same kind, on the same training
    # latents as the export's (not served: the part keeps MAX_DIMENSIONS).
    longer = EmbeddingSpace(*fit_space(train, "bench", 512))
    for k in (256, 512):
        reduced = longer.reduce(latents, k)
        found = top_k(l2(reduced[queried], reduced, queried), K)
        rows.append({**rows[-1], "embedding": f"first {k} axes (longer fit, not served)",
                     "dimensions": k, "encoding": "float32", "npy_bytes": 4 * k,
                     "json_bytes": None, "recall_at_10": round(recall(found, truth), 4),
                     "explained_variance": longer.spec.explained_variance.get(str(k))})  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    shown = args.model_dir.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    record = {"model": shown.as_posix(), "queries": args.queries, "base": len(latents),
              "rows": rows}  # fmt: skip
    (args.out / "encodings.json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(rows))
    return 0


def rescored(candidates: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The top RESCORED by the approximate distance, re-ranked by the float32 distance."""
    shortlist = top_k(candidates, RESCORED)
    return np.take_along_axis(shortlist, top_k(np.take_along_axis(exact, shortlist, 1), K), 1)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| embedding | values | bytes (.npy) | bytes (JSON) | recall@10 | variance kept |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    show: Callable[[float | None], str] = lambda v: (  # noqa: E731
        "" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.3f}"
    )
    for r in rows:
        lines.append(
            f"| {r['embedding']} | {r['dimensions']} | {r['npy_bytes']:,} "
            f"| {show(r['json_bytes'])} | {r['recall_at_10']:.3f} "
            f"| {show(r['explained_variance'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
