"""Which graph the labels should propagate over on small folders (issue 24; docs/experiments.md,
eighteenth session):

    .venv/bin/python -m training small-data --datasets fashion-mnist   # the folders, encoders
    .venv/bin/python bench/folder_graphs.py [bench/out/small-data]     # about 2 min per folder

For every folder the small-data benchmark laid out (its work directory is kept) and every
labelled layout in it, with the encoder that folder's run trained: the labels propagated over
each candidate graph (whitened PCA 32, cosine, 10 neighbours, Poisson learning, balanced), and
the test images labelled by a vote of their 10 nearest training images, the projection fitted
on the training images alone (as training/baselines.py does for pixels). Candidates: the
latents (mirror-summed for clothing, as the run's graph is), the pixels with and without mirror
images, and latents and pixels together, both ways. Also printed: each candidate's 5-fold
cross-validated score over the labelled images (what the run's graph selection sees) and the
served accuracy of the folder's run (docs/results/small-data/small_data.json).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from app.contract.similarity import project
from training.baselines import _vote
from training.commands.common import config_from_manifest
from training.export import load_encoder
from training.folders import load_image_folder
from training.heads import embed
from training.index import fit_projection
from training.propagation import GRAPH_DIMS, NEIGHBOURS, knn_graph, mirrored, propagate
from training.selection import cross_validated, flat_pixels
from training.train import labelled_split, split_train_val

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs/results/small-data/small_data.json"
CLASSES = 10

Pair = tuple[np.ndarray, np.ndarray]
"""Training and test unit vectors."""


def unit(vectors: np.ndarray) -> np.ndarray:
    return np.asarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))


def inductive(train: np.ndarray, test: np.ndarray, flips: Pair | None) -> Pair:
    """Training and test unit vectors in the whitened PCA fitted on the training features."""
    mean, projection = fit_projection(train, GRAPH_DIMS)
    train_v, test_v = project(train, mean, projection), project(test, mean, projection)
    if flips is not None:
        train_v = train_v + project(flips[0], mean, projection)
        test_v = test_v + project(flips[1], mean, projection)
    return unit(train_v), unit(test_v)


def both(a: Pair, b: Pair) -> Pair:
    """Latents and pixels side by side, each half of unit length."""
    return (
        np.concatenate([a[0], b[0]], axis=1) / np.sqrt(2),
        np.concatenate([a[1], b[1]], axis=1) / np.sqrt(2),
    )


def candidates(
    encoder: keras.Model, x: np.ndarray, xt: np.ndarray, mirror: bool
) -> dict[str, Pair]:
    lat, lat_t = embed(encoder, x), embed(encoder, xt)
    lat_flips = (embed(encoder, mirrored(x)), embed(encoder, mirrored(xt))) if mirror else None
    pix, pix_t = flat_pixels(x), flat_pixels(xt)
    pix_flips = (flat_pixels(mirrored(x)), flat_pixels(mirrored(xt)))
    latent = inductive(lat, lat_t, lat_flips)
    pixels_mirror = inductive(pix, pix_t, pix_flips)
    pixels_plain = inductive(pix, pix_t, None)

    found = {
        "latent": latent,
        "pixels, plain": pixels_plain,
        "latent+pixels, plain": both(latent, pixels_plain),
    }
    if mirror:
        found["pixels, mirror"] = pixels_mirror
        found["latent+pixels, mirror"] = both(latent, pixels_mirror)
    return found


def main() -> int:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/out/small-data"
    served = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows: dict[tuple[str, int, int], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for root in sorted(p for p in work.iterdir() if (p / "models-10").is_dir()):
        name, size, seed = root.name.rsplit("-", 2)
        version = max((root / "models-10" / "labels-10").glob("[0-9]*"), key=lambda p: int(p.name))
        encoder = load_encoder(version)
        for layout in sorted(root.glob("labels-[0-9]*")):
            if not layout.name.split("-")[1].isdigit() or layout.name.count("-") > 1:
                continue
            per_class = int(layout.name.split("-")[1])
            data = load_image_folder(layout)
            config = replace(
                config_from_manifest(version), labels_per_class=per_class, seed=int(seed)
            )
            splits = split_train_val(data, config)
            labelled, _ = labelled_split(config, splits, config.seed)
            labels = splits.y_train[labelled]
            found = candidates(encoder, splits.x_train, data.x_test, name != "mnist")
            cv: dict[str, float] = {}
            if per_class >= 2:
                graphs = {k: knn_graph(v[0], NEIGHBOURS) for k, v in found.items()}
                cv, _ = cross_validated(graphs, labelled, labels, CLASSES, int(seed))
            row = rows[(name, int(size), per_class)]
            line = []
            for graph, (train, test) in found.items():
                propagated = propagate(train, labelled, labels, CLASSES, NEIGHBOURS)
                accuracy = float(
                    np.mean(_vote(train, propagated.labels, test, CLASSES) == data.y_test)
                )
                row[graph].append(accuracy)
                if graph in cv:
                    row[f"{graph} (CV)"].append(cv[graph])
                line.append(
                    f"{graph} {accuracy:.3f}" + (f" (CV {cv[graph]:.2f})" if graph in cv else "")
                )
            key = f"{name} {size} images, {per_class}/class, seed {seed}"
            if key in served:
                row["served"].append(served[key]["served"])
            print(f"{key}: " + "; ".join(line), flush=True)
    columns = sorted({g for r in rows.values() for g in r if "(CV)" not in g and g != "served"})
    print()
    print("| folder | labels/class | served | " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in columns) + " |")
    for (dataset, images, count), row in sorted(rows.items()):
        cells = [
            f"{np.mean(row[g]) * 100:.1f}"
            + (f" (CV {np.mean(row[g + ' (CV)']) * 100:.0f})" if row.get(g + " (CV)") else "")
            if row.get(g)
            else "—"
            for g in columns
        ]
        mean_served = f"{np.mean(row['served']) * 100:.1f}" if row.get("served") else "—"
        print(f"| {dataset} {images} | {count} | {mean_served} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
