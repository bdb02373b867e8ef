"""Few labels, many images: the graph chosen by cross-validation, the labels propagated over
it, and the head trained on every training image (and its views) with those labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np

from training.baselines import Verdict, pixel_baselines
from training.heads import embed, fit_propagated_head, view_latents
from training.propagation import Propagated, graph_vectors, mirrored, propagate
from training.selection import GraphChoice, Selection, candidate_vectors, select_graph
from training.suggest import DEFAULT_COUNT, Suggestion, suggest

if TYPE_CHECKING:
    from training.datasets import Dataset
    from training.train import Splits, TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FewLabels:
    """What the propagation made of a run's labels: kept for the report and for suggestions."""

    selection: Selection
    vectors: np.ndarray
    """The chosen graph's unit vectors, one per training image."""
    labelled: np.ndarray
    propagated: Propagated


def propagated_labels(
    config: TrainConfig,
    latents: np.ndarray,
    encoder: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    labelled: np.ndarray,
) -> FewLabels:
    """Labels for every training image from those of `labelled`, over the graph that
    cross-validates best over the labelled images (or the configured one)."""
    flipped = embed(encoder, mirrored(images)) if config.graph_mirror else None
    vectors = candidate_vectors(latents, flipped, images)
    classes = config.model.classes
    if config.graph == "select":
        selection = select_graph(
            vectors, labelled, labels[labelled], classes, config.seed, config.balance_classes
        )
    else:
        selection = Selection(GraphChoice(config.graph), reason="set by --graph")
    choice = selection.choice
    chosen = vectors[choice.features]
    found = propagate(
        chosen,
        labelled,
        labels[labelled],
        classes,
        choice.neighbours,
        config.balance_classes,
        config.mbo,
    )
    logger.info(
        "propagated %d labels to %d images over the %s graph",
        len(labelled),
        len(images),
        choice.name,
    )
    return FewLabels(selection, chosen, labelled, found)


def choose_encoder(
    config: TrainConfig,
    encoders: dict[str, keras.Model],
    images: np.ndarray,
    labels: np.ndarray,
    labelled: np.ndarray,
) -> Selection:
    """Which encoder's latents make the graph that recovers held-out labels best (the
    objective, chosen from the labelled images alone, as the graph is)."""
    vectors = {}
    for name, encoder in encoders.items():
        flipped = embed(encoder, mirrored(images)) if config.graph_mirror else None
        vectors[name] = graph_vectors(embed(encoder, images), flipped)
    return select_graph(
        vectors,
        labelled,
        labels[labelled],
        config.model.classes,
        config.seed,
        config.balance_classes,
        what="objective",
    )


def fit_few_label_head(
    config: TrainConfig,
    encoder: keras.Model,
    latents: np.ndarray,
    images: np.ndarray,
    few: FewLabels,
    validation: tuple[np.ndarray, np.ndarray] | None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The head on the latents of every training image and of `config.head_views` views of
    each, all with the propagated labels."""
    features, config = propagated_head_inputs(config, encoder, latents, images)
    return fit_propagated_head(config, features, few.propagated, validation, verbose=verbose)


def propagated_head_inputs(
    config: TrainConfig, encoder: keras.Model, latents: np.ndarray, images: np.ndarray
) -> tuple[np.ndarray, TrainConfig]:
    """What the propagated head learns from (the latents, then `config.head_views` augmented
    views' latents) and its configuration, with enough epochs for `config.head_steps`."""
    views = view_latents(
        encoder, images, config.head_views, config.augmentation, config.graph_mirror
    )
    features = np.concatenate([latents, views]) if len(views) else latents
    steps_per_epoch = max(1, len(features) // (2 * config.batch_size))
    epochs = max(config.propagated_epochs, -(-config.head_steps // steps_per_epoch))
    return features, config.with_propagated_epochs(epochs)


@dataclass(frozen=True)
class Judged:
    """A few-label run held against the pixels, and what to label next."""

    verdict: Verdict
    selection: Selection
    suggestions: list[Suggestion]
    ids: list[str]
    """The suggestions' image ids (paths, for an image folder), in order."""


def judge(
    dataset: Dataset,
    few: FewLabels,
    splits: Splits,
    config: TrainConfig,
    served_accuracy: float,
    count: int = DEFAULT_COUNT,
) -> Judged:
    """The pixel baselines on the run's own split and test images, the verdict, and the
    `count` unlabelled training images whose labels would help most."""
    labels = splits.y_train[few.labelled]
    baselines = pixel_baselines(
        splits.x_train,
        few.labelled,
        labels,
        (dataset.x_test, dataset.y_test),
        config.model.classes,
        config.graph_mirror,
        config.mbo,
    )
    picked = suggest(few.vectors, few.propagated, few.labelled, count)
    ids = [dataset.train_id(int(splits.train_index[item.position])) for item in picked]
    return Judged(Verdict(served_accuracy, baselines), few.selection, picked, ids)
