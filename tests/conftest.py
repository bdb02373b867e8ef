"""Shared fixtures: a tiny real model repository, exported by the training package."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Test services speak gRPC only where a test asks for it on a port of its own.
os.environ.setdefault("LATENTSERVE_GRPC_PORT", "0")

import numpy as np
import pytest

from training.datasets import CLASS_NAMES, Dataset
from training.models import ModelConfig
from training.train import TrainConfig

TINY_MODEL = ModelConfig(filters=(4, 4), head_units=16)
TINY_TRAINING = TrainConfig(
    model=TINY_MODEL, encoder_steps=6, head_epochs=2, fine_tune_epochs=0, batch_size=64
)


def free_port() -> int:
    """A loopback port nothing listens on now (for servers a test starts itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bar_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small learnable data made here: class c is a bright bar at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        row = 2 + int(label) * 2
        image[row : row + 3, 4:24] = 230
    return images, labels


def tiny_dataset(name: str) -> Dataset:
    x_train, y_train = bar_images(400, seed=1)
    x_test, y_test = bar_images(100, seed=2)
    return Dataset(
        name, "generated bars (tests)", CLASS_NAMES[name], x_train, y_train, x_test, y_test
    )


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<tmp>/models with tiny `mnist` and `fashion-mnist` versions, exported for real; the
    mnist index stores its reference images."""
    from training.pipeline import train_and_export

    root = tmp_path_factory.mktemp("repo")
    for name in ("mnist", "fashion-mnist"):
        train_and_export(
            tiny_dataset(name),
            TINY_TRAINING,
            root / "models",
            root / "results",
            root / "report.md",
            verbose=0,
            index_images=name == "mnist",  # fashion-mnist's index stores none, as shipped
        )
    return root / "models"


@pytest.fixture(scope="session")
def other_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mnist version trained with another seed: other weights, other embeddings."""
    from training.pipeline import train_and_export

    root = tmp_path_factory.mktemp("other")
    return train_and_export(
        tiny_dataset("mnist"),
        replace(TINY_TRAINING, seed=1),
        root / "models",
        root / "results",
        root / "report.md",
        verbose=0,
    ).path
