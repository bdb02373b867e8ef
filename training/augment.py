"""Augmentation fitted to what framed photos and scans look like, as TensorFlow ops on batches.

A photo or scan framed by app/contract/framing.py differs from its dataset's image in small
ways: the item is a little off in position, scale and angle (the crop is found, not known), softer
(focus, resampling), its tones bent (ink strength, light) and grainy (what is left of the
noise), sometimes with compression blocks. The training views are the framed images with
random amounts of each, drawn per image; the ranges are those of training/render.py's
photos as they arrive framed. A mirror image is a view too where the classes allow it
(clothing, not digits: the run's graph_mirror).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from app.contract.repository import IMAGE_SIDE

CENTRE = (IMAGE_SIDE - 1) / 2
BLUR_KERNEL = (1.0, 4.0, 6.0, 4.0, 1.0)  # binomial: a Gaussian of sigma 1 px


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 10.0
    """Degrees either way."""
    scale: float = 0.1
    """Relative, either way."""
    shift: float = 2.0
    """Pixels either way, each axis."""
    blur: float = 0.8
    """Largest share of a sigma-1 blur mixed in."""
    contrast: float = 0.35
    """Tones bent by a gamma of exp(±contrast), then stretched back to a 255 peak."""
    noise: float = 6.0
    """Largest standard deviation of the grain, in grey levels."""
    jpeg: float = 0.25
    """Share of views compressed as JPEG of quality 70-95."""


def _affine(count: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    """Per image, the projective transform (output -> input) of a turn, a scale and a shift
    about the frame's centre."""
    angle = tf.random.uniform([count], -aug.rotation, aug.rotation) * (math.pi / 180)
    scale = tf.random.uniform([count], 1 - aug.scale, 1 + aug.scale)
    shift_x = tf.random.uniform([count], -aug.shift, aug.shift)
    shift_y = tf.random.uniform([count], -aug.shift, aug.shift)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a2 = CENTRE - cos * CENTRE + sin * CENTRE - shift_x
    b2 = CENTRE - sin * CENTRE - cos * CENTRE - shift_y
    zeros = tf.zeros([count])
    return tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)


def _blurred(images: tf.Tensor, most: float) -> tf.Tensor:
    row = tf.constant(BLUR_KERNEL) / sum(BLUR_KERNEL)
    kernel = tf.reshape(tf.tensordot(row, row, 0), [5, 5, 1, 1])
    soft = tf.nn.conv2d(images, kernel, 1, "SAME")
    share = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], 0, most)
    return images * (1 - share) + soft * share


def _jpeg(images: tf.Tensor, share: float) -> tf.Tensor:
    """A share of the images through JPEG at quality 70-95 (one image at a time: TensorFlow's
    JPEG op takes no batches; 128 images cost a few milliseconds)."""
    count = tf.shape(images)[0]
    quality = tf.random.uniform([count], 70, 96, tf.int32)
    pixels = tf.cast(tf.round(images), tf.uint8)
    compressed = tf.map_fn(
        lambda pair: tf.image.adjust_jpeg_quality(pair[0], pair[1]),
        (pixels, quality),
        fn_output_signature=tf.uint8,
    )
    chosen = tf.random.uniform([count, 1, 1, 1]) < share
    return tf.where(chosen, tf.cast(compressed, tf.float32), images)


def augment(pixels: tf.Tensor, aug: Augmentation, flip: bool) -> tf.Tensor:
    """uint8 (n, 28, 28) -> uint8 (n, 28, 28): each image a random view of itself; with
    `flip` (the run's graph_mirror: clothing, not digits) half of them mirrored."""
    count = tf.shape(pixels)[0]
    images = tf.cast(pixels, tf.float32)[..., None]
    if flip:
        mirror = tf.random.uniform([count, 1, 1, 1]) < 0.5
        images = tf.where(mirror, images[:, :, ::-1, :], images)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_affine(count, aug),
        output_shape=[IMAGE_SIDE, IMAGE_SIDE],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    if aug.blur:
        images = _blurred(images, aug.blur)
    if aug.contrast:
        gamma = tf.exp(tf.random.uniform([count, 1, 1, 1], -aug.contrast, aug.contrast))
        images = 255.0 * tf.pow(images / 255.0, gamma)
    if aug.noise:
        grain = tf.random.uniform([count, 1, 1, 1], 0, aug.noise)
        images = tf.clip_by_value(images + tf.random.normal(tf.shape(images)) * grain, 0, 255)
    if aug.jpeg:
        images = _jpeg(images, aug.jpeg)
    # As the framing does: the strongest pixel is 255.
    peak = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    images = images * (255.0 / tf.maximum(peak, 1.0))
    return tf.cast(tf.round(images[..., 0]), tf.uint8)
