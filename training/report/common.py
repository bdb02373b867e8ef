"""Targets and number formats every section of the report shares."""

from __future__ import annotations

import numpy as np

TARGETS = {
    "fashion-mnist": {
        "frozen": 0.900,
        "fine_tuned": 0.925,
        "bce": 0.2625,
        "ten_labels": 0.77,
        "hundred_labels": 0.84,
    },
    "mnist": {"frozen": 0.975, "fine_tuned": 0.985},
    # A head trained on 10 labels per class, propagated (training/propagation.py).
    "fashion-mnist-10": {"frozen": 0.77},
}
MAX_HEAD_ONLY_MINUTES = 5
MAX_TRAIN_MINUTES = 15
MIN_GAIN_OVER_PIXELS = 0.05
MIN_OOD_AUROC = 0.95
MAX_FRAMING_DROP = 0.05  # photos (and scans of handwriting) within 5 points of clean images
FRAMING_TARGETS = ("photo", "photo + EXIF")
HANDWRITING = "handwritten digit"


def pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values) * 100:.1f} ± {np.std(values) * 100:.1f}"
