"""Classifier heads: the conv head reads the flat latent spatially, and the label curve feeds
the same head raw pixels at their own spatial shape."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from tests.conftest import TINY_TRAINING, tiny_dataset
from training.commands.common import config_from_manifest, with_head
from training.label_curve import label_curve
from training.models import build_head
from training.pipeline import run_label_curve
from training.train import train


def test_conv_head_takes_flat_features_of_either_shape() -> None:
    model = replace(TINY_TRAINING.model, head="conv")
    on_latents = build_head(model)
    on_pixels = build_head(model, (28, 28, 1))
    assert on_latents.input_shape == (None, model.latent_dim)
    assert on_pixels.input_shape == (None, 784)
    assert on_latents.output_shape == on_pixels.output_shape == (None, 10)
    # It is spatial: a conv layer sits between the flat input and the dense layers.
    assert any(layer.__class__.__name__ == "Conv2D" for layer in on_latents.layers)
    assert not any(
        layer.__class__.__name__ == "Conv2D" for layer in build_head(TINY_TRAINING.model).layers
    )


CHANCE = 0.1  # ten classes


def test_label_curve_runs_the_conv_head_on_latents_and_pixels() -> None:
    """Both heads learn the tiny bars from 5 labels per class: well above chance (measured:
    0.68 on latents, 1.0 on pixels with 20 epochs)."""
    config = replace(TINY_TRAINING, head_epochs=20, model=replace(TINY_TRAINING.model, head="conv"))
    dataset = tiny_dataset("mnist")
    encoder = train(dataset, config, verbose=0).encoder
    rows = label_curve(dataset, encoder, config, labels_per_class=(5,), seeds=(0,))
    assert rows[0]["labels_per_class"] == 5
    for kind in ("latent", "pixels"):
        result = rows[0][kind]
        assert isinstance(result, dict) and len(result["runs"]) == 1
        assert result["mean"] >= 3 * CHANCE, (kind, result)


def test_each_head_gets_its_own_curve_file_and_report_section(
    model_repo: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    shutil.copytree(model_repo.parent / "results", results)
    version_dir = next((model_repo / "mnist").iterdir())
    for head in ("dense", "conv"):
        config = with_head(config_from_manifest(version_dir), head)
        run_label_curve(
            tiny_dataset("mnist"), version_dir, config, results, tmp_path / "report.md", (5,), (0,)
        )
    report = (tmp_path / "report.md").read_text()
    for head in ("dense", "conv"):
        curve = json.loads((results / "mnist" / f"label_curve_{head}.json").read_text())
        assert curve["head"] == head and curve["rows"][0]["labels_per_class"] == 5
        assert (results / "mnist" / f"label_curve_{head}.png").stat().st_size > 0
        assert f"### Label efficiency, mnist, {head} head" in report
        assert f"(results/mnist/label_curve_{head}.png)" in report
    # The dense head's pixel baseline is described as what it reads: flat pixels.
    assert "on raw pixels (flattened, 784 values)" in report
