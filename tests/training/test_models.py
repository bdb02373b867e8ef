"""Model builders: the training-only input mask."""

from __future__ import annotations

import numpy as np

from training.models import MASK_PATCH, ModelConfig, PatchMask, build_encoder


def test_the_patch_mask_blanks_whole_patches_only_while_training() -> None:
    images = np.ones((64, 28, 28, 1), np.float32)
    masked = np.asarray(PatchMask(0.3)(images, training=True))
    assert 0.2 < 1 - masked.mean() < 0.4
    cells = masked[:, ::MASK_PATCH, ::MASK_PATCH, 0]  # one pixel per patch
    patches = masked.reshape(64, 7, MASK_PATCH, 7, MASK_PATCH).transpose(0, 1, 3, 2, 4)
    assert np.array_equal(patches.min(axis=(3, 4)), cells)  # a patch is all kept or all blank
    assert np.array_equal(np.asarray(PatchMask(0.3)(images, training=False)), images)


def test_a_masked_encoder_is_the_plain_one_at_inference() -> None:
    masked = build_encoder(ModelConfig(filters=(4, 4), input_mask=0.5))
    plain = build_encoder(ModelConfig(filters=(4, 4)))
    plain.set_weights(masked.get_weights())
    pixels = np.random.default_rng(0).integers(0, 256, (8, 28, 28)).astype(np.uint8)
    np.testing.assert_allclose(masked.predict(pixels, verbose=0), plain.predict(pixels, verbose=0))
    assert not np.allclose(masked(pixels, training=True), plain(pixels, training=False))
