"""Model builders: convolutional encoder/decoder and the classifier head.

The encoder takes raw uint8 pixels (batch, 28, 28) and does its own scaling, so the exported
graph is exactly what was trained and the service never re-implements preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod
from typing import Literal

import keras
from keras import layers, ops

from app.contract.repository import IMAGE_SIDE

POOL_STEPS = 2  # two 2x2 max-pools: 28 -> 14 -> 7
LATENT_SIDE = IMAGE_SIDE // 2**POOL_STEPS
HeadKind = Literal["dense", "conv"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks. Defaults are the reference design; the CLI default is tuned."""

    filters: tuple[int, int] = (32, 16)
    """Conv channels of the two encoder stages; the second is the latent's depth."""
    stage_convs: int = 1
    """3x3 conv layers per encoder stage, before its pool (the latent's shape is the same)."""
    head: HeadKind = "dense"
    """dense: Dense layers on the flattened latent (reference); conv: one more 3x3 conv stage
    and a 2x2 pool on the spatial latent first."""
    head_filters: int = 64
    """Channels of the conv head's conv stage."""
    head_units: int = 128
    """Hidden units of the classifier head."""
    head_dropout: float = 0.0
    """Dropout before the head's hidden and output layers."""
    input_noise: float = 0.0
    """Std of Gaussian noise added to the 0-1 pixels while training the autoencoder."""
    input_mask: float = 0.0
    """Share of 4x4 patches blanked in the autoencoder's input while training (masked
    autoencoding: the decoder still reconstructs the whole image)."""
    classes: int = 10
    """Outputs of the head: the dataset's classes (image folders have any number from 2)."""

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (LATENT_SIDE, LATENT_SIDE, self.filters[-1])

    @property
    def latent_dim(self) -> int:
        side, _, depth = self.latent_shape
        return side * side * depth

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


MASK_PATCH = 4


class PatchMask(layers.Layer):
    """Blank a random share of the image's MASK_PATCH x MASK_PATCH patches, only in training."""

    def __init__(self, rate: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, x: object, training: bool = False) -> object:
        if not training:
            return x
        cells = IMAGE_SIDE // MASK_PATCH
        draw = keras.random.uniform((ops.shape(x)[0], cells, cells, 1), seed=self.seed_generator)
        keep = ops.cast(draw >= self.rate, "float32")
        keep = ops.repeat(ops.repeat(keep, MASK_PATCH, axis=1), MASK_PATCH, axis=2)
        return x * keep  # type: ignore[operator]

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "rate": self.rate}


def build_encoder(config: ModelConfig) -> keras.Model:
    pixels = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="pixels")
    x = layers.Rescaling(1.0 / 255)(pixels)
    x = layers.Reshape((IMAGE_SIDE, IMAGE_SIDE, 1))(x)
    if config.input_noise:
        x = layers.GaussianNoise(config.input_noise)(x)  # active only while training
    if config.input_mask:
        x = PatchMask(config.input_mask)(x)  # active only while training
    for channels in config.filters:
        for _ in range(config.stage_convs):
            x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    latent = layers.Flatten(name="latent")(x)
    return keras.Model(pixels, latent, name="encoder")


def build_decoder(config: ModelConfig) -> keras.Model:
    latent = keras.Input((config.latent_dim,), name="latent")
    x = layers.Reshape(config.latent_shape)(latent)
    for channels in reversed(config.filters):
        x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    reconstruction = layers.Reshape((IMAGE_SIDE, IMAGE_SIDE), name="reconstruction")(x)
    return keras.Model(latent, reconstruction, name="decoder")


def build_head(
    config: ModelConfig, feature_shape: tuple[int, int, int] | None = None
) -> keras.Model:
    """Head on flat features that have a spatial shape (the latent, or raw pixels as (28, 28, 1)
    for the baseline); it takes them flat, as the exported classifier signature does."""
    shape = feature_shape or config.latent_shape
    features = keras.Input((prod(shape),), name="latent")
    x = features
    if config.head == "conv":
        x = layers.Reshape(shape)(x)
        x = layers.Conv2D(config.head_filters, 3, padding="same", activation="relu")(x)
        x = layers.Flatten()(layers.MaxPooling2D(2)(x))
        if config.head_dropout:
            x = layers.Dropout(config.head_dropout)(x)
    x = layers.Dense(config.head_units, activation="relu")(x)
    if config.head_dropout:
        x = layers.Dropout(config.head_dropout)(x)
    probabilities = layers.Dense(config.classes, activation="softmax", name="probabilities")(x)
    return keras.Model(features, probabilities, name="classifier")


def build_autoencoder(encoder: keras.Model, decoder: keras.Model) -> keras.Model:
    pixels = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="pixels")
    return keras.Model(pixels, decoder(encoder(pixels)), name="autoencoder")


def build_classifier(encoder: keras.Model, head: keras.Model) -> keras.Model:
    pixels = keras.Input((IMAGE_SIDE, IMAGE_SIDE), dtype="uint8", name="pixels")
    return keras.Model(pixels, head(encoder(pixels)), name="encoder_classifier")
