"""Threaded against one-thread kNN graph builds (training/propagation.py `neighbours`):

    .venv/bin/python bench/graph_build.py [--images 60000]

On the whitened PCA of Fashion-MNIST's training pixels (the pixel graph every few-label run
builds), each build twice: the seconds each took and how many images' neighbour lists the two
builds disagree on. A threaded insert links each node to what other threads had inserted by
then, so its graph changes from build to build; the run builds in one thread for that reason.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from usearch.index import Index

from training.datasets import load_dataset
from training.propagation import NEIGHBOURS, graph_vectors, neighbours
from training.selection import flat_pixels


def threaded(vectors: np.ndarray, k: int) -> np.ndarray:
    index = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(len(vectors)), vectors)  # usearch's default: every core
    return np.asarray(index.search(vectors, k).keys)


def one_thread(vectors: np.ndarray, k: int) -> np.ndarray:
    return neighbours(vectors, vectors, k)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    args = parser.parse_args()
    images = load_dataset("fashion-mnist").x_train[: args.images]
    vectors = np.ascontiguousarray(graph_vectors(flat_pixels(images)), np.float32)
    print(f"{len(vectors)} Fashion-MNIST training images, {vectors.shape[1]} dims, k={NEIGHBOURS}")
    for name, build in (("threaded", threaded), ("one thread", one_thread)):
        seconds, keys = [], []
        for _ in range(2):
            start = time.perf_counter()
            keys.append(build(vectors, NEIGHBOURS + 1))
            seconds.append(time.perf_counter() - start)
        differ = int((keys[0] != keys[1]).any(axis=1).sum())
        print(
            f"{name:10s} {seconds[0]:5.1f} s, {seconds[1]:5.1f} s; "
            f"rows whose neighbours differ between the two builds: {differ}"
        )


if __name__ == "__main__":
    main()
