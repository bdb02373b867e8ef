"""Poisson learning against Poisson-MBO, through to the served head (issue 24; docs/experiments.md,
seventeenth session):

    .venv/bin/python bench/propagation_heads.py            # seeds 0-2, about 25 minutes

For each seed, the same run as the shipped `fashion-mnist-10` (its manifest's configuration,
the `fashion-mnist/4` encoder, 10 labels per class): the labels are propagated once by Poisson
learning and once refined by Poisson-MBO, and the same head (same seed, same augmented views)
is trained on each; printed are the share of training images labelled right and the head's
accuracy on the test split.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from training.commands.common import config_from_manifest
from training.datasets import load_dataset
from training.export import load_encoder
from training.few_labels import propagated_head_inputs
from training.heads import embed, fit_propagated_head
from training.propagation import graph_vectors, mirrored, propagate
from training.train import labelled_split, split_train_val

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def main() -> int:
    shipped = config_from_manifest(ROOT / "models/fashion-mnist-10/2")
    encoder = load_encoder(ROOT / "models/fashion-mnist/4")
    dataset = load_dataset("fashion-mnist")
    test = embed(encoder, dataset.x_test)
    print("| seed | propagation | training images labelled right | head on the test split |")
    print("| --- | --- | --- | --- |")
    for seed in SEEDS:
        config = replace(shipped, seed=seed)
        splits = split_train_val(dataset, config)
        x, y = splits.x_train, splits.y_train
        keras.utils.set_random_seed(seed)
        labelled, val_idx = labelled_split(config, splits, seed)
        validation = (embed(encoder, splits.x_val[val_idx]), splits.y_val[val_idx])
        latents = embed(encoder, x)
        features, config = propagated_head_inputs(config, encoder, latents, x)
        vectors = graph_vectors(latents, embed(encoder, mirrored(x)))
        for name, mbo in (("Poisson learning", False), ("Poisson-MBO", True)):
            found = propagate(vectors, labelled, y[labelled], config.model.classes, mbo=mbo)
            keras.utils.set_random_seed(seed)
            head, _ = fit_propagated_head(config, features, found, validation)
            predicted = head.predict(test, batch_size=1024, verbose=0).argmax(axis=1)
            print(
                f"| {seed} | {name} | {100 * np.mean(found.labels == y):.2f} % "
                f"| {100 * np.mean(predicted == dataset.y_test):.2f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
