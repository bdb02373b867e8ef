"""The small-data benchmark's machinery, on a tiny folder with a tiny configuration (the figures
of a tiny run mean nothing; what is checked is that every number is measured and reported)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import TINY_TRAINING
from training.datasets import DatasetError, load_dataset
from training.report import write_report
from training.small_data import small_data


def test_folders_are_rendered_laid_out_trained_and_reported(tmp_path: Path) -> None:
    try:
        load_dataset("mnist")
    except DatasetError as err:
        pytest.skip(f"no mnist digits installed: {err}")
    config = replace(
        TINY_TRAINING,
        objective="contrastive",
        encoder_steps=4,
        head_steps=10,
        head_views=1,
        model=replace(TINY_TRAINING.model, head="dense"),
    )
    results = tmp_path / "results" / "small-data" / "small_data.json"
    work = tmp_path / "work"
    found = small_data(["mnist"], [120], [3, 2], 1, work, config, results, test_images=100)
    assert set(found) == {
        "mnist 120 images, 3/class, seed 0",
        "mnist 120 images, 2/class, seed 0",
    }
    first, second = (
        found["mnist 120 images, 3/class, seed 0"],
        found["mnist 120 images, 2/class, seed 0"],
    )
    assert first["encoder_trained"] and not second["encoder_trained"]  # one encoder per folder
    assert second["encoder"] == first["encoder"]
    assert set(first["baselines"]) == {
        "pixels, logistic regression",
        "pixels, propagation",
        "pixels, label spreading",
    }
    assert set(first["gain"]) == {"suggested", "random"}
    labelled = sorted(p.name for p in (work / "mnist-120-0" / "labels-3").iterdir())
    assert labelled[-2:] == ["test", "unlabelled"] and len(labelled) == 12  # 10 classes
    assert json.loads(results.read_text()) == json.loads(json.dumps(found, default=str))
    # A second call resumes: nothing is trained again.
    again = small_data(["mnist"], [120], [3, 2], 1, work, config, results, test_images=100)
    assert again == json.loads(results.read_text())
    report = write_report(tmp_path / "results", tmp_path / "report.md").read_text()
    assert "## Small folders: few labels against pixels" in report
    assert "| mnist | 120 | 3 | 1 |" in report


def test_a_baseline_only_some_folders_measure_is_left_blank_and_out_of_their_lead(
    tmp_path: Path,
) -> None:
    """Clothing runs also measure the unmirrored pixels' propagation, digits do not: the table
    keeps one column for it, blank for digits, and each row's lead is over its own baselines."""

    def run(dataset: str, served: float, baselines: dict[str, float]) -> dict[str, object]:
        return {
            "dataset": dataset,
            "size": 100,
            "labels_per_class": 5,
            "seed": 0,
            "served": served,
            "baselines": baselines,
            "encoder_trained": True,
            "seconds": 60.0,
            "gain": {"suggested": 0.02, "random": 0.01},
        }

    runs = {
        "clothing": run(
            "fashion-mnist",
            0.80,
            {"pixels, propagation": 0.70, "pixels, propagation, no mirror": 0.76},
        ),
        "digits": run("mnist", 0.90, {"pixels, propagation": 0.80}),
    }
    (tmp_path / "results" / "small-data").mkdir(parents=True)
    (tmp_path / "results" / "small-data" / "small_data.json").write_text(json.dumps(runs))
    report = write_report(tmp_path / "results", tmp_path / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| dataset |"))
    assert "pixels, propagation, no mirror" in header
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if " | 100 | 5 |" in line}
    assert "| 80.0 ± 0.0 | 70.0 ± 0.0 | 76.0 ± 0.0 | +4.0 |" in rows["| fashion-mnist"]
    assert "| 90.0 ± 0.0 | 80.0 ± 0.0 | — | +10.0 |" in rows["| mnist"]
