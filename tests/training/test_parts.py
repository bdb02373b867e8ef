"""Adding the optional parts to an exported version: `python -m training calibrate`."""

from __future__ import annotations

import json
from pathlib import Path

from app.contract.repository import read_manifest, verified_manifest
from tests.app.conftest import without_part
from tests.conftest import tiny_dataset
from training.cli import main
from training.datasets import save_cache
from training.ood import CHOSEN


def test_calibrate_adds_a_checksummed_part_and_reports_every_score(
    model_repo: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models" / "fashion-mnist"
    models.mkdir(parents=True)
    version = without_part(model_repo / "fashion-mnist" / "1", models, 1, "ood")
    graphs = {k: v for k, v in read_manifest(version).files.items() if not k.startswith("ood")}
    cache = tmp_path / "cache"  # holds the tiny fashion-mnist only: no other dataset
    save_cache(tiny_dataset("fashion-mnist"), cache)
    results, report = tmp_path / "results", tmp_path / "training.md"
    argv = ["calibrate", "--model-dir", str(version), "--cache-dir", str(cache)]
    assert main([*argv, "--results", str(results), "--report", str(report)]) == 0

    manifest = verified_manifest(version)  # every checksum, the new part's too
    assert manifest.ood is not None and manifest.ood.file in manifest.files
    assert {k: v for k, v in manifest.files.items() if not k.startswith("ood")} == graphs
    assert manifest.ood.calibration_images == 40  # the run's validation split, not its test
    assert set(manifest.ood.evaluation) == {"uniform noise"}
    assert manifest.ood.evaluation["uniform noise"]["auroc"] > 0.9
    recorded = json.loads((results / "fashion-mnist" / "ood.json").read_text())
    assert recorded["scores"]["uniform noise"][CHOSEN] == manifest.ood.evaluation["uniform noise"]
    text = report.read_text()
    assert "### Out-of-distribution score, fashion-mnist" in text
    for score in recorded["scores"]["uniform noise"]:
        assert f"| {score} |" in text


def test_litert_adds_checked_graphs_to_an_older_version(model_repo: Path, tmp_path: Path) -> None:
    models = tmp_path / "models" / "mnist"
    models.mkdir(parents=True)
    version = without_part(model_repo / "mnist" / "1", models, 1, "litert")
    graphs = read_manifest(version).files
    assert read_manifest(version).litert is None
    assert main(["litert", "--model-dir", str(version)]) == 0

    manifest = verified_manifest(version)  # every checksum, the new graphs' too
    assert manifest.litert is not None
    assert set(manifest.litert.files) == {"embed", "classify", "reconstruct", "full"}
    full = ["latent", "pixels", "probabilities", "reconstruction"]  # the converter's order
    assert manifest.litert.outputs["full"] == full
    assert manifest.litert.max_difference < 1e-3
    assert {k: v for k, v in manifest.files.items() if not k.startswith("litert")} == graphs
