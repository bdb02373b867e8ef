"""Fine-tuning: shift augmentation in training only, on a copy that shares the classifier."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from tests.conftest import TINY_TRAINING, tiny_dataset
from training.fine_tune import with_shifts
from training.models import build_classifier, build_encoder, build_head
from training.train import train


def _shifter(trainer: keras.Model) -> keras.Model:
    """The augmentation part of the training model: pixels in, shifted pixels out."""
    classifier_input = trainer.layers[-1]._inbound_nodes[0].input_tensors[0]
    return keras.Model(trainer.input, classifier_input)


def test_shifts_move_whole_pixels_in_training_and_nothing_at_inference() -> None:
    classifier = build_classifier(
        build_encoder(TINY_TRAINING.model), build_head(TINY_TRAINING.model)
    )
    trainer = with_shifts(classifier, 2, seed=0)
    square = np.zeros((64, 28, 28), np.uint8)
    square[:, 10:18, 10:18] = 200
    shifted = keras.ops.convert_to_numpy(_shifter(trainer)(square, training=True))
    corners = np.array([np.argwhere(image).min(axis=0) for image in shifted])
    assert np.abs(corners - 10).max() <= 2  # at most two pixels either way
    assert len({tuple(c) for c in corners}) > 1  # and not all the same shift
    assert (np.count_nonzero(shifted, axis=(1, 2)) == 64).all()  # whole pixels: no blur
    assert set(np.unique(shifted)) == {0, 200}
    unchanged = keras.ops.convert_to_numpy(_shifter(trainer)(square, training=False))
    np.testing.assert_array_equal(unchanged, square)
    # The trainer shares the classifier's weights: what it learns, the classifier has.
    assert trainer.layers[-1] is classifier
    assert with_shifts(classifier, 0, seed=0) is classifier


def test_fine_tuning_trains_a_copy_and_leaves_the_exported_encoder_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import training.train

    before: list[list[np.ndarray]] = []
    real_fine_tune = training.train.fine_tune

    def snapshot_then_fine_tune(config, encoder, *args):  # type: ignore[no-untyped-def]
        before.append([w.copy() for w in encoder.get_weights()])
        return real_fine_tune(config, encoder, *args)

    monkeypatch.setattr(training.train, "fine_tune", snapshot_then_fine_tune)
    config = replace(TINY_TRAINING, fine_tune_epochs=1, fine_tune_shift=2)
    trained = train(tiny_dataset("mnist"), config, verbose=0)
    assert trained.fine_tuned is not None
    assert "accuracy" in trained.history["fine_tune"]
    (encoder_before,) = before
    after = trained.encoder.get_weights()
    assert len(after) == len(encoder_before)
    for old, new in zip(encoder_before, after, strict=True):
        np.testing.assert_array_equal(old, new)  # the exported encoder did not move
    # ...while the fine-tuned copy did: its encoder's first kernel changed.
    tuned_encoder = next(
        layer for layer in trained.fine_tuned.layers if layer.name.startswith("encoder")
    )
    assert not np.array_equal(tuned_encoder.get_weights()[0], encoder_before[0])
