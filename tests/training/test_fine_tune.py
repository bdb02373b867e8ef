"""Fine-tuning: shift augmentation in training only, on a copy that shares the classifier."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np

from tests.conftest import TINY_TRAINING, tiny_dataset
from training.models import build_classifier, build_encoder, build_head
from training.train import train, with_shifts


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


def test_fine_tuning_with_shifts_trains_and_reports_separately() -> None:
    config = replace(TINY_TRAINING, fine_tune_epochs=1, fine_tune_shift=2)
    trained = train(tiny_dataset("mnist"), config, verbose=0)
    assert trained.fine_tuned is not None
    assert "accuracy" in trained.history["fine_tune"]
    # The exported encoder is untouched by fine-tuning.
    assert trained.fine_tuned.layers[1] is not trained.encoder
