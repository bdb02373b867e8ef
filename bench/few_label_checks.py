"""Three checks for issue 24 on full Fashion-MNIST, 10 labels per class (docs/experiments.md,
sixteenth session):

    .venv/bin/python bench/few_label_checks.py

1. More views of each image in the propagation graph: each image and its mirror image
   (the default), plus their one-pixel shifts, plus their two-pixel shifts; the share of the
   training images labelled right, seeds 0-2 (as `python -m training propagation-study`).
2. The shipped `fashion-mnist-10` on the test split, its probabilities averaged with its mirror
   image's.
3. Each test image classified by a vote of its nearest training images in the graph's space,
   weighted as the graph weights them, with their propagated labels and weights.

Encodes with the shipped `fashion-mnist` encoder through LiteRT (app.models.litert).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.contract.repository import latest_version
from app.contract.similarity import project
from app.models.litert import load_litert_encoder, load_litert_version
from training.commands.common import config_from_manifest
from training.datasets import load_dataset
from training.index import fit_projection
from training.propagation import GRAPH_DIMS, mirrored, neighbours, propagate
from training.train import per_class_subset, split_train_val

ROOT = Path(__file__).resolve().parents[1]
LABELS, SEEDS, CLASSES, CHUNK = 10, (0, 1, 2), 10, 512


def shifted(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Images moved by (dx, dy) pixels, the uncovered edge black."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def in_chunks(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(images[i : i + CHUNK]) for i in range(0, len(images), CHUNK)])


def unit(summed: np.ndarray) -> np.ndarray:
    return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)


def main() -> int:
    path, manifest = latest_version(ROOT / "models", "fashion-mnist")
    encode = load_litert_encoder(path, manifest)
    dataset = load_dataset("fashion-mnist")
    splits = split_train_val(dataset, config_from_manifest(path))
    x, y = splits.x_train, splits.y_train
    plain = in_chunks(encode, x)
    mean, projection = fit_projection(plain, GRAPH_DIMS)

    def projected(images: np.ndarray) -> np.ndarray:
        return project(in_chunks(encode, images), mean, projection)

    views = {"image": project(plain, mean, projection), "mirror": projected(mirrored(x))}
    for step in (1, 2):
        for dx, dy in ((step, 0), (-step, 0), (0, step), (0, -step)):
            views[f"{step}px {dx},{dy}"] = projected(shifted(x, dx, dy))
            views[f"{step}px {dx},{dy} mirror"] = projected(shifted(mirrored(x), dx, dy))
    variants = {
        "image + mirror (default)": ["image", "mirror"],
        "+ one-pixel shifts": [v for v in views if not v.startswith("2px")],
        "+ one- and two-pixel shifts": list(views),
    }
    print("1. training images labelled right by the propagation, seeds 0-2")
    found = {}
    for name, chosen in variants.items():
        vectors = unit(sum(views[v] for v in chosen))
        runs = []
        for seed in SEEDS:
            labelled = per_class_subset(y, LABELS, seed)
            found[name, seed] = propagate(vectors, labelled, y[labelled], CLASSES)
            runs.append(float(np.mean(found[name, seed].labels == y)))
        print(f"   {name:30s} {len(chosen):2d} views  {100 * np.mean(runs):.2f} %  {runs}")

    head_path, head_manifest = latest_version(ROOT / "models", "fashion-mnist-10")
    head = load_litert_version(head_path, head_manifest)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return in_chunks(lambda chunk: head.run("classify", chunk).probabilities, images)

    served, flipped = probabilities(dataset.x_test), probabilities(mirrored(dataset.x_test))
    print(f"2. {head_path.relative_to(ROOT)} on the test split")
    for name, scores in (("served", served), ("mirror", flipped), ("mean", served + flipped)):
        print(f"   {name:8s} {100 * np.mean(scores.argmax(1) == dataset.y_test):.2f} %")

    print("3. vote of the nearest training images (default graph), seeds 0-2")
    train_vectors = unit(views["image"] + views["mirror"]).astype(np.float32)
    test_vectors = unit(projected(dataset.x_test) + projected(mirrored(dataset.x_test)))
    for k in (10, 30):
        keys, distances = neighbours(train_vectors, test_vectors, k)
        weights = np.exp(-4 * (distances / np.maximum(distances[:, -1:], 1e-9)) ** 2)
        runs = []
        for seed in SEEDS:
            got = found["image + mirror (default)", seed]
            votes = np.zeros((len(keys), CLASSES))
            rows = np.arange(len(keys))
            for j in range(k):
                np.add.at(
                    votes, (rows, got.labels[keys[:, j]]), weights[:, j] * got.weights[keys[:, j]]
                )
            runs.append(float(np.mean(votes.argmax(1) == dataset.y_test)))
        print(f"   k {k:2d}  {100 * np.mean(runs):.2f} %  {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
