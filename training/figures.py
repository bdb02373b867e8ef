"""PNG figures for the training report (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines or CI
import matplotlib.pyplot as plt
import numpy as np

FIGURE_DPI = 100
LATENT_MAP_POINTS = 3000


def reconstructions(
    originals: np.ndarray, rebuilt: np.ndarray, path: Path, count: int = 10
) -> None:
    fig, axes = plt.subplots(2, count, figsize=(count, 2.2))
    for i in range(count):
        for row, images in enumerate((originals, rebuilt)):
            axes[row, i].imshow(images[i], cmap="gray", vmin=0, vmax=255 if row == 0 else 1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("test images", loc="left", fontsize=9)
    axes[1, 0].set_title("reconstructions", loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for (i, j), value in np.ndenumerate(matrix):
        color = "white" if value > threshold else "black"
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


CURVES = {
    "latent": "head on latents",
    "pixels": "head on raw pixels",
    "latent_propagated": "latents, labels propagated",
    "pixels_propagated": "raw pixels, labels propagated",
}


def label_curve(rows: Sequence[dict[str, object]], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ticks = [str(r["labels_per_class"]) for r in rows]
    for kind, label in CURVES.items():
        if kind not in rows[0]:
            continue  # curves measured before label propagation existed
        means = [r[kind]["mean"] * 100 for r in rows]  # type: ignore[index]
        stds = [r[kind]["std"] * 100 for r in rows]  # type: ignore[index]
        style = "--" if kind.endswith("_propagated") else "-"
        ax.errorbar(ticks, means, yerr=stds, marker="o", capsize=3, label=label, linestyle=style)
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def latent_map(
    latents: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: Path
) -> None:
    """First two principal components of the latents, coloured by class."""
    sample = latents[:LATENT_MAP_POINTS] - latents[:LATENT_MAP_POINTS].mean(axis=0)
    _, _, components = np.linalg.svd(sample, full_matrices=False)
    coords = sample @ components[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    scatter = ax.scatter(
        coords[:, 0], coords[:, 1], c=labels[:LATENT_MAP_POINTS], cmap="tab10", s=4, alpha=0.7
    )
    handles = scatter.legend_elements()[0]
    ax.legend(handles, class_names, fontsize=7, markerscale=1.5, loc="best")
    ax.set_title("latent space, first two principal components (test images)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
