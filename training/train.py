"""Training: autoencoder on unlabelled images, then a classifier head on its latents.

The encoder that is exported is the autoencoder's encoder, untouched by classification, so
/embed, /reconstruct and /classify share one latent space. Fine-tuning (encoder + head
together) trains a copy and is reported separately.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace

import keras
import numpy as np
from keras import layers, ops

from app.repository import IMAGE_SIDE
from training.datasets import Dataset
from training.models import (
    ModelConfig,
    build_autoencoder,
    build_classifier,
    build_decoder,
    build_encoder,
    build_head,
)
from training.propagation import Propagated, graph_vectors, mirrored, propagate

logger = logging.getLogger(__name__)

PREDICT_BATCH = 1024


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded in the manifest)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    ae_epochs: int = 20
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
    the labels over a kNN graph of the latents and train the head on every training image,
    weighted by confidence (training/propagation.py). False: the head sees labelled ones only."""
    graph_mirror: bool = True
    """Propagation: an image is near its mirror image in the graph (right for clothing)."""
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


@dataclass(frozen=True)
class Splits:
    """Train/validation carved out of the dataset's training part; the test part is untouched."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def split_train_val(dataset: Dataset, config: TrainConfig) -> Splits:
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(dataset.x_train))
    if config.max_train_images:
        order = order[: config.max_train_images]
    n_val = max(1, int(len(order) * config.validation_fraction))
    val, train = order[:n_val], order[n_val:]
    return Splits(
        dataset.x_train[train], dataset.y_train[train], dataset.x_train[val], dataset.y_train[val]
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
    return np.sort(np.concatenate(picks))


def early_stopping(patience: int) -> keras.callbacks.Callback:
    return keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 pixels as the 0-1 targets the decoder reconstructs."""
    return images.astype("float32") / 255.0


def train_autoencoder(
    config: TrainConfig, splits: Splits, verbose: int
) -> tuple[keras.Model, keras.Model, dict[str, list[float]]]:
    encoder, decoder = build_encoder(config.model), build_decoder(config.model)
    autoencoder = build_autoencoder(encoder, decoder)
    autoencoder.compile(keras.optimizers.Adam(config.learning_rate), "binary_crossentropy")
    history = autoencoder.fit(
        splits.x_train,
        to_unit(splits.x_train),
        validation_data=(splits.x_val, to_unit(splits.x_val)),
        batch_size=config.batch_size,
        epochs=config.ae_epochs,
        callbacks=[early_stopping(config.patience)],
        verbose=verbose,
    )
    return encoder, decoder, history.history


def fit_head(
    config: TrainConfig,
    features: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    feature_shape: tuple[int, int, int] | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train a fresh head on flat features; the same recipe serves latents and raw pixels.

    `feature_shape` is the features' spatial shape (default: the latent's)."""
    x, y = features
    head = build_head(config.model, feature_shape)
    head.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # Small labelled sets get small batches so the head still sees many updates.
    batch_size = int(np.clip(len(x) // 10, 8, config.batch_size))
    history = head.fit(
        x,
        y,
        validation_data=validation,
        batch_size=batch_size,
        epochs=config.head_epochs,
        callbacks=[early_stopping(config.patience * 2)],
        verbose=verbose,
    )
    return head, history.history


def few_label_targets(
    config: TrainConfig,
    encoder: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    labelled: np.ndarray,
) -> tuple[np.ndarray, Propagated]:
    """Latents of every training image, and labels for all of them propagated from `labelled`."""
    latents = embed(encoder, images)
    flipped = embed(encoder, mirrored(images)) if config.graph_mirror else None
    vectors = graph_vectors(latents, flipped)
    return latents, propagate(vectors, labelled, labels[labelled], config.model.classes)


def fit_propagated_head(
    config: TrainConfig,
    features: np.ndarray,
    targets: Propagated,
    validation: tuple[np.ndarray, np.ndarray] | None,
    feature_shape: tuple[int, int, int] | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """A fresh head on every training image's features, with the propagated labels."""
    head = build_head(config.model, feature_shape)
    head.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = head.fit(
        features,
        targets.labels,
        sample_weight=targets.weights,
        validation_data=validation,
        batch_size=2 * config.batch_size,
        epochs=config.propagated_epochs,
        verbose=verbose,
    )
    return head, history.history


def fine_tune(
    config: TrainConfig,
    encoder: keras.Model,
    head: keras.Model,
    labelled: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    verbose: int,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train encoder + head together, on copies: the exported encoder stays the autoencoder's.

    The copy has no input noise: the autoencoder's denoising noise cost the classifier about a
    point of accuracy when left on during fine-tuning. On mnist, random shifts and a
    cosine-decaying learning rate (1e-3) reached 98.85% where a constant 2e-4 without shifts
    reached 98.25%, both after 30 epochs (docs/experiments.md).
    """
    encoder_copy = build_encoder(replace(config.model, input_noise=0.0, input_mask=0.0))
    head_copy = keras.models.clone_model(head)
    encoder_copy.set_weights(encoder.get_weights())
    head_copy.set_weights(head.get_weights())
    classifier = build_classifier(encoder_copy, head_copy)
    trainer = with_shifts(classifier, config.fine_tune_shift, config.seed)
    steps = max(1, config.fine_tune_epochs * -(-len(labelled[0]) // config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.fine_tune_learning_rate, steps)
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = trainer.fit(
        *labelled,
        validation_data=validation,
        batch_size=config.batch_size,
        epochs=config.fine_tune_epochs,
        # Under a decaying step progress is slow near the end: stop only on a long plateau.
        callbacks=[early_stopping(config.patience * 2)],
        verbose=verbose,
    )
    return classifier, history.history


def with_shifts(classifier: keras.Model, pixels: int, seed: int) -> keras.Model:
    """The classifier behind a random translation of up to `pixels` pixels, active only while
    training (Keras skips augmentation layers at inference); the classifier shares weights."""
    if not pixels:
        return classifier
    images = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="training_pixels")
    x = layers.Reshape((IMAGE_SIDE, IMAGE_SIDE, 1))(ops.cast(images, "float32"))
    factor = pixels / IMAGE_SIDE
    x = layers.RandomTranslation(
        factor, factor, fill_mode="constant", interpolation="nearest", seed=seed
    )(x)
    shifted = ops.cast(layers.Reshape((IMAGE_SIDE, IMAGE_SIDE))(x), "uint8")
    return keras.Model(images, classifier(shifted), name="shifted_classifier")


def embed(encoder: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(encoder.predict(images, batch_size=PREDICT_BATCH, verbose=0))


def labelled_split(config: TrainConfig, splits: Splits, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled train and validation indices: with scarce labels, validation is scarce too."""
    return (
        per_class_subset(splits.y_train, config.labels_per_class, seed),
        per_class_subset(splits.y_val, config.labels_per_class, seed + 1),
    )


def train(dataset: Dataset, config: TrainConfig, verbose: int = 2) -> TrainedModels:
    keras.utils.set_random_seed(config.seed)
    splits = split_train_val(dataset, config)
    timings: dict[str, float] = {}
    history: dict[str, dict[str, list[float]]] = {}
    logger.info(
        "autoencoder: %d train / %d validation images, labels ignored",
        len(splits.x_train),
        len(splits.x_val),
    )
    start = time.perf_counter()
    encoder, decoder, history["autoencoder"] = train_autoencoder(config, splits, verbose)
    timings["autoencoder_s"] = time.perf_counter() - start

    fitted = train_head(config, encoder, splits, verbose)
    head, history["head"], timings["head_s"] = fitted.head, fitted.history, fitted.seconds
    train_idx, val_idx = labelled_split(config, splits, config.seed)
    labelled = (splits.x_train[train_idx], splits.y_train[train_idx])
    validation = (splits.x_val[val_idx], splits.y_val[val_idx])

    fine_tuned = None
    if config.fine_tune_epochs:
        logger.info("fine-tuning encoder + head for up to %d epochs", config.fine_tune_epochs)
        start = time.perf_counter()
        fine_tuned, history["fine_tune"] = fine_tune(
            config, encoder, head, labelled, validation, verbose
        )
        timings["fine_tune_s"] = time.perf_counter() - start
    return TrainedModels(
        encoder, decoder, head, fine_tuned, timings, history, fitted.labels, fitted.labels_given
    )


@dataclass(frozen=True)
class FittedHead:
    head: keras.Model
    history: dict[str, list[float]]
    labels: np.ndarray
    """The label of each training image the head learnt from (given or propagated; -1: none)."""
    labels_given: int
    """Labelled training images the head was given."""
    seconds: float


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
    if config.propagate and len(train_idx) < len(splits.y_train):
        logger.info("head: %d labelled images, propagated to %d", len(train_idx), len(head_labels))
        latents, targets = few_label_targets(
            config, encoder, splits.x_train, splits.y_train, train_idx
        )
        head, history = fit_propagated_head(config, latents, targets, validation, verbose=verbose)
        head_labels = targets.labels
    else:
        logger.info("head: %d labelled images, %d for validation", len(train_idx), len(val_idx))
        labelled = (embed(encoder, splits.x_train[train_idx]), splits.y_train[train_idx])
        head, history = fit_head(config, labelled, validation, verbose=verbose)
        head_labels[train_idx] = splits.y_train[train_idx]
    seconds = time.perf_counter() - start
    return FittedHead(head, history, head_labels, len(train_idx), seconds)
