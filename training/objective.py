"""What the encoder learns from unlabelled images, in a budget of optimizer steps.

Two objectives, both with a decoder, so /reconstruct stays what it is:

- `autoencoder`: reconstruct each image from itself (with the input noise of ModelConfig).
- `contrastive`: two random views of each image (training/augment.py: what framed photos and
  scans differ by), each reconstructed as the clean image, so the decoder undoes the view and
  the latent has to keep the item, not the view; and the two views' latents pulled together
  against every other image in the batch (NT-Xent, as SimCLR), through a small projection head
  that is trained with them and not exported. Images that are views of one another end up
  near each other, which is what the label propagation's graph needs (docs/experiments.md).

The budget is in steps rather than epochs, so that 500 images get as many updates as 50,000:
an epoch of a small folder is a handful of steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from training.augment import augment
from training.models import build_decoder, build_encoder

if TYPE_CHECKING:
    from training.train import Splits, TrainConfig

logger = logging.getLogger(__name__)

PROJECTION_UNITS = (256, 64)
LOG_EVERY = 250  # steps between progress lines (and loss history points)


@dataclass
class EncoderRun:
    encoder: keras.Model
    decoder: keras.Model
    history: dict[str, list[float]]
    seconds: float


def nt_xent(first: tf.Tensor, second: tf.Tensor, temperature: float) -> tf.Tensor:
    """SimCLR's loss: each view must pick its partner out of the batch's 2n - 1 others."""
    views = tf.math.l2_normalize(tf.concat([first, second], 0), 1)
    count = tf.shape(first)[0]
    logits = tf.matmul(views, views, transpose_b=True) / temperature
    logits -= tf.eye(2 * count) * 1e9  # never itself
    partners = tf.concat([tf.range(count, 2 * count), tf.range(0, count)], 0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(partners, logits))


def _projection(latent_dim: int) -> keras.Model:
    head = keras.Sequential(
        [layers.Dense(PROJECTION_UNITS[0], activation="relu"), layers.Dense(PROJECTION_UNITS[1])],
        name="projection",
    )
    head.build((None, latent_dim))
    return head


def _batches(images: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    batch_size = min(batch_size, len(images))
    data = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed)
    return data.repeat().batch(batch_size, drop_remainder=True).prefetch(2)


def reconstruction_bce(encoder: keras.Model, decoder: keras.Model, images: np.ndarray) -> float:
    """Mean binary cross-entropy per pixel of the clean images' reconstructions."""
    latents = encoder.predict(images, batch_size=1024, verbose=0)
    rebuilt = np.clip(decoder.predict(latents, batch_size=1024, verbose=0), 1e-7, 1 - 1e-7)
    target = images.astype(np.float32) / 255.0
    return float(-np.mean(target * np.log(rebuilt) + (1 - target) * np.log(1 - rebuilt)))


def train_encoder(config: TrainConfig, splits: Splits, verbose: int = 0) -> EncoderRun:
    """Encoder and decoder, trained `config.encoder_steps` steps on the training images."""
    encoder, decoder = build_encoder(config.model), build_decoder(config.model)
    contrastive = config.objective == "contrastive"
    projection = _projection(config.model.latent_dim) if contrastive else None
    optimizer = keras.optimizers.Adam(config.learning_rate)
    trained = encoder.trainable_variables + decoder.trainable_variables
    if projection is not None:
        trained += projection.trainable_variables
    bce = keras.losses.BinaryCrossentropy()
    views, flip = config.augmentation, config.graph_mirror

    def step(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        target = tf.cast(pixels, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            if projection is None:
                rebuilt = decoder(encoder(pixels, training=True), training=True)
                reconstruction = bce(target, rebuilt)
                invariance = tf.constant(0.0)
            else:
                first = encoder(augment(pixels, views, flip), training=True)
                second = encoder(augment(pixels, views, flip), training=True)
                reconstruction = 0.5 * (
                    bce(target, decoder(first, training=True))
                    + bce(target, decoder(second, training=True))
                )
                invariance = nt_xent(
                    projection(first, training=True),
                    projection(second, training=True),
                    config.temperature,
                )
            loss = reconstruction + config.contrastive_weight * invariance
        optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained, strict=True))
        return reconstruction, invariance

    compiled = tf.function(step)  # one graph for every step
    history: dict[str, list[float]] = {"reconstruction": [], "invariance": [], "step": []}
    start = time.perf_counter()
    sums = np.zeros(2)
    for number, pixels in enumerate(_batches(splits.x_train, config.batch_size, config.seed)):
        if number == config.encoder_steps:
            break
        sums += [float(value) for value in compiled(pixels)]
        if (number + 1) % LOG_EVERY == 0 or number + 1 == config.encoder_steps:
            done = (number % LOG_EVERY) + 1
            history["step"].append(number + 1)
            history["reconstruction"].append(sums[0] / done)
            history["invariance"].append(sums[1] / done)
            sums[:] = 0
            if verbose:
                logger.info(
                    "encoder step %d/%d: reconstruction %.4f, invariance %.4f (%.0f s)",
                    number + 1,
                    config.encoder_steps,
                    history["reconstruction"][-1],
                    history["invariance"][-1],
                    time.perf_counter() - start,
                )
    seconds = time.perf_counter() - start
    history["val_reconstruction"] = [reconstruction_bce(encoder, decoder, splits.x_val)]
    logger.info(
        "encoder (%s): %d steps in %.0f s, validation reconstruction BCE %.4f",
        config.objective,
        config.encoder_steps,
        seconds,
        history["val_reconstruction"][0],
    )
    return EncoderRun(encoder, decoder, history, seconds)
