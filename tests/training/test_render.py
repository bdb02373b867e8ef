"""Rendering datasets' images as photos and scans, and the framing-robustness benchmark."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from training.datasets import DatasetError, load_dataset
from training.render import DISTORTIONS, LOOKS, PHOTO, SCAN, Look, render
from training.report import write_report
from training.robustness import CLEAN, CONDITIONS, robustness


def item() -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[3:25, 8:14] = 255
    image[3:9, 8:22] = 180
    return image


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("look", [PHOTO, SCAN, *DISTORTIONS.values()])
def test_every_look_renders_a_file_in_its_ranges(look: Look) -> None:
    for seed in range(5):
        picture = opened(render(item(), look, np.random.default_rng(seed)))
        side = max(picture.size)
        assert look.side[0] - 1 <= side <= look.side[1] + 1
        assert picture.format == ("PNG" if look.jpeg is None else picture.format)
        assert picture.mode == ("RGB" if look.colour else "L")


def test_the_ground_is_the_looks_and_the_item_darker() -> None:
    look = replace(PHOTO, noise=(0, 0), light=(0, 0), jpeg=None, colour=False, blur=(0, 0))
    pixels = np.asarray(opened(render(item(), look, np.random.default_rng(1))))
    ground = np.median(pixels)
    assert look.ground[0] <= ground <= look.ground[1]
    assert pixels.min() < ground * (1 - look.contrast[0]) + 2  # the item's strongest pixel


def test_a_picture_stored_sideways_shows_upright_through_its_tag() -> None:
    upright = replace(DISTORTIONS["margins, off-centre"], exif_share=0.0)
    sideways = replace(upright, exif_share=1.0)
    plain = opened(render(item(), upright, np.random.default_rng(7)))
    tagged = opened(render(item(), sideways, np.random.default_rng(7)))
    assert tagged.getexif()[0x0112] in (6, 8) and tagged.size == plain.size[::-1]
    np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(tagged)), np.asarray(plain))


def test_renders_repeat_for_a_seed() -> None:
    assert render(item(), PHOTO, np.random.default_rng(3)) == render(
        item(), PHOTO, np.random.default_rng(3)
    )


def test_the_benchmark_reports_every_condition(model_repo: Path, tmp_path: Path) -> None:
    """On a tiny exported version and a few real test images: every condition measured, the
    report written with its targets (the tiny model's accuracy itself means nothing)."""
    try:
        load_dataset("mnist")
    except DatasetError as err:
        pytest.skip(f"no mnist digits installed: {err}")
    version = next((model_repo / "mnist").iterdir())
    found = robustness([version], count=12, seed=0)
    rows = found["mnist"]["rows"]
    assert [row["name"] for row in rows] == list(CONDITIONS)
    assert rows[0]["name"] == CLEAN and all(0 <= row["accuracy"] <= 1 for row in rows)
    assert {"photo", "photo + EXIF", "scan"} <= {row["name"] for row in rows} == set(CONDITIONS)
    assert set(LOOKS) < set(CONDITIONS)
    results = tmp_path / "results"
    (results / "mnist").mkdir(parents=True)
    (results / "mnist" / "robustness.json").write_text(__import__("json").dumps(found["mnist"]))
    report = write_report(results, tmp_path / "report.md").read_text()
    assert "### Photos and scans, mnist" in report
    assert "Targets, within 5 points of the clean accuracy: photo " in report
    assert "scan" in report.split("Targets")[1]  # digits are handwriting: scans are a target
