"""The training views: what framed photos and scans differ by, drawn per image."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.augment import Augmentation, augment

NONE = Augmentation(rotation=0, scale=0, shift=0, blur=0, contrast=0, noise=0, jpeg=0)


def items(count: int = 16) -> np.ndarray:
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 4:24, 3:9] = 255  # an L in the left half: mirrored, it moves right
    images[:, 18:24, 3:13] = 180
    return images


def test_views_keep_the_frame_and_the_peak() -> None:
    views = augment(tf.constant(items()), Augmentation(), flip=False).numpy()
    assert views.shape == (16, 28, 28) and views.dtype == np.uint8
    assert (views.reshape(16, -1).max(axis=1) == 255).all()  # as the framing stretches them


def test_each_image_gets_its_own_view_and_the_item_survives() -> None:
    views = augment(tf.constant(items()), Augmentation(), flip=False).numpy().astype(float)
    assert len({view.tobytes() for view in views}) == 16
    for view in views:  # still the same bar, moved and bent a little
        assert np.corrcoef(view.ravel(), items()[0].ravel().astype(float))[0, 1] > 0.3


def test_without_ranges_a_view_is_the_image() -> None:
    np.testing.assert_array_equal(augment(tf.constant(items()), NONE, flip=False), items())


def test_mirror_views_only_where_the_classes_allow_them() -> None:
    never = augment(tf.constant(items(200)), NONE, flip=False).numpy()
    assert never[:, :, 14:].sum() == 0
    flipped = augment(tf.constant(items(200)), NONE, flip=True).numpy()
    mirrored = flipped[:, :, 14:].sum(axis=(1, 2)) > 0
    assert 60 < mirrored.sum() < 140  # about half
