"""Training: an encoder (and decoder) from unlabelled images, then a classifier head on its latents.

The encoder that is exported is the one its objective trained (training/objective.py),
untouched by classification, so /embed, /reconstruct and /classify share one latent space.
With few labels the head learns from every training image, labelled by propagation over a
graph chosen by cross-validation (training/few_labels.py). Fine-tuning (encoder + head
together) trains a copy and is reported separately (training/fine_tune.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import keras
import numpy as np

from training.augment import Augmentation
from training.datasets import Dataset
from training.few_labels import FewLabels, choose_encoder, fit_few_label_head, propagated_labels
from training.fine_tune import fine_tune
from training.heads import PREDICT_BATCH, embed, fit_head, view_latents
from training.models import ModelConfig
from training.objective import EncoderRun, train_encoder
from training.selection import Selection

logger = logging.getLogger(__name__)

__all__ = ["PREDICT_BATCH", "embed"]  # used from here by the rest of the package
Objective = Literal["autoencoder", "contrastive", "select"]
SELECTABLE: tuple[Objective, ...] = ("contrastive", "autoencoder")
"""select: both are trained, the first is preferred (training/selection.py's one-SE rule)."""
GraphSetting = Literal["select", "latent", "pixels", "latent+pixels"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded in the manifest)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    objective: Objective = "autoencoder"
    """What the encoder learns (training/objective.py); select: an encoder for each objective,
    the one whose latents cross-validate best over the labelled images is kept."""
    encoder_steps: int = 3000
    """Optimizer steps of the encoder's training (a budget that does not grow with the data)."""
    autoencoder_steps: int | None = None
    """select: the autoencoder's budget (default encoder_steps; its steps are cheaper)."""
    contrastive_weight: float = 1.0
    """contrastive: weight of the views' NT-Xent loss beside their reconstruction."""
    temperature: float = 0.2
    """contrastive: NT-Xent temperature."""
    augmentation: Augmentation = field(default_factory=Augmentation)
    """The views of the contrastive objective and of the head (training/augment.py)."""
    head_epochs: int = 40
    fine_tune_epochs: int = 0  # 0: no fine-tuning
    batch_size: int = 128
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 2e-4
    """Start of the fine-tuning schedule, which decays to zero (cosine) over its epochs."""
    fine_tune_shift: int = 0
    """Fine-tuning only: shift each training image by up to this many pixels (augmentation)."""
    labels_per_class: int | None = None  # None: every training label
    propagate: bool = True
    """When some training images have no label (few labels, or an unlabelled/ folder): propagate
    the labels over a kNN graph and train the head on every training image, weighted by
    confidence (training/few_labels.py). False: the head sees labelled ones only."""
    graph: GraphSetting = "select"
    """Propagation: what the graph is built on; select: chosen by cross-validation over the
    labelled images (training/selection.py)."""
    graph_mirror: bool = True
    """Propagation: an image is near its mirror image in the graph (right for clothing)."""
    balance_classes: bool = True
    """Propagation: the classes end up about equally large (training/propagation.py)."""
    mbo: bool = False
    """Propagation: refine Poisson learning's labels by Poisson-MBO (training/propagation.py;
    not the default: docs/experiments.md, seventeenth session)."""
    head_views: int = 0
    """Augmented views of each training image whose latents the head also learns from."""
    head_steps: int = 0
    """Propagated head: at least this many optimizer steps (small folders have short epochs)."""
    encoder_from: str | None = None
    """models/<name>/<version> whose encoder and decoder were reused (only the head trained)."""
    propagated_epochs: int = 15
    """Propagation: epochs of the head over every training image (no early stopping: the
    labelled validation images are as scarce as the labels)."""
    validation_fraction: float = 0.1
    patience: int = 3
    max_train_images: int | None = None  # cap for quick runs and tests
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> TrainConfig:
        """A configuration as a manifest records it; fields an older export recorded that no
        longer exist (ae_epochs: the budget was in epochs then) are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in recorded.items() if k in known}
        model = dict(values.pop("model", {}))
        model["filters"] = tuple(model.get("filters", ModelConfig().filters))
        values["model"] = ModelConfig(**model)
        if "augmentation" in values:
            values["augmentation"] = Augmentation(**values["augmentation"])
        return cls(**values)

    def with_propagated_epochs(self, epochs: int) -> TrainConfig:
        return replace(self, propagated_epochs=epochs)


@dataclass
class TrainedModels:
    encoder: keras.Model
    decoder: keras.Model
    head: keras.Model
    fine_tuned: keras.Model | None
    timings: dict[str, float]
    history: dict[str, dict[str, list[float]]]
    head_labels: np.ndarray | None = None
    """The label of every training image the head learnt from (given or propagated); -1 where
    it saw none. Calibration and the similarity index use these, never labels it was not given."""
    labels_given: int = 0
    few_labels: FewLabels | None = None
    splits: Splits | None = None
    objective: Objective = "autoencoder"
    """The objective of the encoder kept (the chosen one, with `select`)."""
    objective_selection: Selection | None = None


@dataclass(frozen=True)
class Splits:
    """Train/validation carved out of the dataset's training part; the test part is untouched."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    train_index: np.ndarray
    """Where each training image is in the dataset's training part (for ids and paths)."""


def split_train_val(dataset: Dataset, config: TrainConfig) -> Splits:
    """A random validation share; when the dataset has unlabelled images, drawn from those
    alone, so that none of the few labels is spent on validation."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(dataset.x_train))
    if config.max_train_images:
        order = order[: config.max_train_images]
    unlabelled = dataset.y_train[order] < 0
    pool = order[unlabelled] if unlabelled.any() else order
    n_val = max(1, int(len(order) * config.validation_fraction))
    n_val = min(n_val, max(1, len(pool) - 1)) if unlabelled.any() else n_val
    val = pool[:n_val]
    train = np.setdiff1d(order, val) if unlabelled.any() else order[n_val:]
    return Splits(
        dataset.x_train[train],
        dataset.y_train[train],
        dataset.x_train[val],
        dataset.y_train[val],
        train,
    )


def per_class_subset(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of `per_class` random labelled examples of each class (every labelled index when
    None); label -1 marks an unlabelled image."""
    if per_class is None:
        return np.flatnonzero(labels >= 0)
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), min(per_class, int(np.sum(labels == c))), False)
        for c in np.unique(labels[labels >= 0])
    ]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 pixels as the 0-1 targets the decoder reconstructs."""
    return images.astype("float32") / 255.0


def labelled_split(config: TrainConfig, splits: Splits, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled train and validation indices: with scarce labels, validation is scarce too."""
    return (
        per_class_subset(splits.y_train, config.labels_per_class, seed),
        per_class_subset(splits.y_val, config.labels_per_class, seed + 1),
    )


def train(dataset: Dataset, config: TrainConfig, verbose: int = 2) -> TrainedModels:
    keras.utils.set_random_seed(config.seed)
    splits = split_train_val(dataset, config)
    logger.info(
        "encoder (%s): %d train / %d validation images, labels ignored",
        config.objective,
        len(splits.x_train),
        len(splits.x_val),
    )
    runs: dict[Objective, EncoderRun] = {
        objective: train_encoder(_for(config, objective), splits, verbose)
        for objective in (SELECTABLE if config.objective == "select" else (config.objective,))
    }
    timings = {"encoder_s": sum(run.seconds for run in runs.values())}
    history = {f"encoder ({objective})": run.history for objective, run in runs.items()}
    chosen: Objective = next(iter(runs))
    selection = None
    if len(runs) > 1:
        given = labelled_split(config, splits, config.seed)[0]
        encoders: dict[str, keras.Model] = {o: run.encoder for o, run in runs.items()}
        selection = choose_encoder(config, encoders, splits.x_train, splits.y_train, given)
        chosen = next(o for o in runs if o == selection.choice.name)
    run = runs[chosen]
    keras.utils.set_random_seed(config.seed)  # the head as a head-only run would train it
    fitted = train_head(config, run.encoder, splits, verbose)
    head, history["head"], timings["head_s"] = fitted.head, fitted.history, fitted.seconds
    train_idx, val_idx = labelled_split(config, splits, config.seed)
    labelled = (splits.x_train[train_idx], splits.y_train[train_idx])
    validation = (splits.x_val[val_idx], splits.y_val[val_idx])
    fine_tuned = None
    if config.fine_tune_epochs:
        logger.info("fine-tuning encoder + head for up to %d epochs", config.fine_tune_epochs)
        start = time.perf_counter()
        fine_tuned, history["fine_tune"] = fine_tune(
            config, run.encoder, head, labelled, validation, verbose
        )
        timings["fine_tune_s"] = time.perf_counter() - start
    return TrainedModels(
        run.encoder,
        run.decoder,
        head,
        fine_tuned,
        timings,
        history,
        fitted.labels,
        fitted.labels_given,
        fitted.few_labels,
        splits,
        chosen,
        selection,
    )


def _for(config: TrainConfig, objective: Objective) -> TrainConfig:
    """The configuration that trains the encoder of `objective` (with its budget)."""
    steps = config.encoder_steps
    if objective == "autoencoder" and config.objective == "select":
        steps = config.autoencoder_steps or steps
    return replace(config, objective=objective, encoder_steps=steps)


@dataclass(frozen=True)
class FittedHead:
    head: keras.Model
    history: dict[str, list[float]]
    labels: np.ndarray
    """The label of each training image the head learnt from (given or propagated; -1: none)."""
    labels_given: int
    """Labelled training images the head was given."""
    seconds: float
    few_labels: FewLabels | None = None


def train_head(
    config: TrainConfig, encoder: keras.Model, splits: Splits, verbose: int = 0
) -> FittedHead:
    """The head on the encoder's latents: on the labelled images, or, when some training images
    have no label and `config.propagate`, on every image with propagated labels."""
    start = time.perf_counter()
    train_idx, val_idx = labelled_split(config, splits, config.seed)
    validation: tuple[np.ndarray, np.ndarray] | None = None
    if len(val_idx):  # an image folder with few labels may leave none for validation
        validation = (embed(encoder, splits.x_val[val_idx]), splits.y_val[val_idx])
    head_labels = np.full(len(splits.y_train), -1)
    few = None
    if config.propagate and len(train_idx) < len(splits.y_train):
        logger.info("head: %d labelled images, propagated to %d", len(train_idx), len(head_labels))
        latents = embed(encoder, splits.x_train)
        few = propagated_labels(config, latents, encoder, splits.x_train, splits.y_train, train_idx)
        head, history = fit_few_label_head(
            config, encoder, latents, splits.x_train, few, validation, verbose
        )
        head_labels = few.propagated.labels
    else:
        logger.info("head: %d labelled images, %d for validation", len(train_idx), len(val_idx))
        images, labels = splits.x_train[train_idx], splits.y_train[train_idx]
        features = embed(encoder, images)
        views = view_latents(
            encoder, images, config.head_views, config.augmentation, config.graph_mirror
        )
        if len(views):
            features = np.concatenate([features, views])
            labels = np.tile(labels, 1 + config.head_views)
        head, history = fit_head(config, (features, labels), validation, verbose=verbose)
        head_labels[train_idx] = splits.y_train[train_idx]
    seconds = time.perf_counter() - start
    return FittedHead(head, history, head_labels, len(train_idx), seconds, few)
