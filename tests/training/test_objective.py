"""The encoder objectives, trained for a few steps on small real-looking data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tensorflow as tf

from tests.conftest import TINY_TRAINING, bar_images
from training.objective import nt_xent, train_encoder
from training.train import Splits


def splits() -> Splits:
    images, labels = bar_images(300, seed=3)
    return Splits(images[:250], labels[:250], images[250:], labels[250:], np.arange(250))


def test_nt_xent_rewards_views_that_match_their_partner() -> None:
    rng = np.random.default_rng(0)
    first = tf.constant(rng.normal(size=(32, 16)), tf.float32)
    matched = float(nt_xent(first, first + 0.01, 0.2))
    unmatched = float(nt_xent(first, tf.constant(rng.normal(size=(32, 16)), tf.float32), 0.2))
    assert matched * 3 < unmatched


def test_the_contrastive_objective_learns_and_keeps_a_decoder() -> None:
    config = replace(TINY_TRAINING, objective="contrastive", encoder_steps=40, batch_size=32)
    run = train_encoder(config, splits())
    history = run.history
    assert history["step"][-1] == 40 and len(history["val_reconstruction"]) == 1
    assert np.isfinite(history["reconstruction"]).all() and history["invariance"][-1] > 0
    rebuilt = run.decoder(run.encoder(splits().x_val)).numpy()
    assert rebuilt.shape == (50, 28, 28) and rebuilt.min() >= 0 and rebuilt.max() <= 1


def test_the_budget_is_in_steps_whatever_the_data() -> None:
    config = replace(TINY_TRAINING, encoder_steps=7, batch_size=64)
    tiny = Splits(
        splits().x_train[:20], splits().y_train[:20], splits().x_val, splits().y_val, np.arange(20)
    )
    assert train_encoder(config, tiny).history["step"] == [7]  # 20 images: 7 steps all the same
