"""Choosing the graph from the labelled images, the pixel baselines, the verdict and what to
label next."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from training.baselines import Verdict, pixel_baselines
from training.propagation import graph_vectors, propagate
from training.selection import candidate_vectors, flat_pixels, select_graph, stratified_folds
from training.suggest import suggest, write_csv

CLASSES = 4


def clusters(count: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one direction per class, and their classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, count)
    centres = np.eye(CLASSES, 8)
    vectors = centres[labels] + rng.normal(0, spread, (count, 8))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def labelled_of(labels: np.ndarray, per_class: int) -> np.ndarray:
    return np.sort(
        np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(CLASSES)])
    )


def test_folds_deal_every_class_across_them() -> None:
    labels = np.repeat(np.arange(CLASSES), 5)
    folds = stratified_folds(labels, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    assert all(sorted(labels[fold].tolist()) == list(range(CLASSES)) for fold in folds)


def test_cross_validation_picks_the_graph_that_holds_the_classes() -> None:
    good, labels = clusters(400, 0.3, seed=1)
    noise = np.random.default_rng(2).normal(size=good.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    labelled = labelled_of(labels, 6)
    vectors = {"latent": noise, "pixels": good, "latent+pixels": noise}
    chosen = select_graph(vectors, labelled, labels[labelled], CLASSES)
    assert chosen.choice.features == "pixels" and chosen.folds == 5
    assert chosen.scores["pixels"] > 0.9 > chosen.scores["latent"]
    # Equally good graphs: the first (latents) wins, by the one-standard-error rule.
    same = {name: good for name in vectors}
    assert select_graph(same, labelled, labels[labelled], CLASSES).choice.features == "latent"


def test_mirror_images_go_into_the_latent_candidate_only() -> None:
    # Pixels propagate better without mirror images (docs/experiments.md, eighteenth session),
    # latents as well or better with them: the pixel halves of the candidates are plain.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    latents, flipped = rng.normal(size=(60, 16)), rng.normal(size=(60, 16))
    found = candidate_vectors(latents, flipped, images)
    np.testing.assert_allclose(found["pixels"], graph_vectors(flat_pixels(images)), atol=1e-6)
    np.testing.assert_allclose(found["latent"], graph_vectors(latents, flipped), atol=1e-6)
    assert not np.allclose(found["latent"], graph_vectors(latents), atol=1e-3)
    halves = np.concatenate([found["latent"], found["pixels"]], axis=1) / np.sqrt(2)
    np.testing.assert_allclose(found["latent+pixels"], halves, atol=1e-6)


def test_one_label_per_class_leaves_nothing_to_hold_out() -> None:
    good, labels = clusters(100, 0.3, seed=1)
    labelled = labelled_of(labels, 1)
    chosen = select_graph({"latent": good}, labelled, labels[labelled], CLASSES)
    assert chosen.choice.features == "latent" and not chosen.scores
    assert "nothing to hold out" in chosen.reason


def test_pixel_baselines_and_the_verdict() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, 300)
    images = rng.integers(0, 30, (300, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[4 + 5 * label : 8 + 5 * label, 4:24] = 250  # a bar per class
    labelled = labelled_of(labels[:200], 3)
    found = pixel_baselines(
        images[:200], labelled, labels[labelled], (images[200:], labels[200:]), CLASSES, False
    )
    assert set(found) == {
        "pixels, logistic regression",
        "pixels, propagation",
        "pixels, label spreading",
    }
    assert min(found.values()) > 0.9  # bars are easy
    mirrored = pixel_baselines(
        images[:200], labelled, labels[labelled], (images[200:], labels[200:]), CLASSES, True
    )
    # A run whose graph uses mirror images is held to the plain pixels' propagation as well.
    assert set(mirrored) == set(found) | {"pixels, propagation, no mirror"}
    unmirrored = mirrored["pixels, propagation, no mirror"]
    assert unmirrored == found["pixels, propagation"]  # the same graph, built in one thread
    behind = Verdict(0.80, {"pixels, propagation": 0.85, "pixels, logistic regression": 0.7})
    assert not behind.ahead and behind.best == ("pixels, propagation", 0.85)
    assert any(line.startswith("NOT AHEAD") for line in behind.lines())
    ahead = Verdict(0.90, {"pixels, propagation": 0.85})
    assert ahead.ahead and "+5.00 points" in ahead.lines()[-1]


def test_suggestions_are_unsure_typical_unlabelled_and_spread(tmp_path: Path) -> None:
    vectors, labels = clusters(600, 0.45, seed=4)
    labelled = labelled_of(labels, 2)
    propagated = propagate(vectors, labelled, labels[labelled], CLASSES)
    picked = suggest(vectors, propagated, labelled, count=20)
    positions = [item.position for item in picked]
    assert len(set(positions)) == 20 and not set(positions) & set(labelled.tolist())
    unsure = np.median(propagated.margins[positions])
    assert unsure < np.median(propagated.margins)  # less sure than the typical image
    similarity = vectors[positions] @ vectors[positions].T
    assert (similarity[~np.eye(20, dtype=bool)] < 0.9999).all()  # no two the same image
    path = write_csv(
        tmp_path / "s.csv", picked, [f"img/{p}.png" for p in positions], ("a", "b", "c", "d")
    )
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["rank", "image", "current_guess", "confidence"]
    assert rows[1][:2] == ["1", f"img/{positions[0]}.png"] and len(rows) == 21
