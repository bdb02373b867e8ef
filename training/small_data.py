"""The small-data benchmark: few labels on image folders as users have them, against pixels.

For each dataset, folder size and seed, training images and 1,000 test images are rendered as
a user's folder looks (training/render.py FOLDER: varied sizes and margins, dark on light, PNG
and JPEG) and written to disk once. For each number of labels per class, a folder is laid out
of them (links, not copies): that many labelled images per class in class folders, the rest in
unlabelled/, the test images in test/. Each layout is trained the way a user trains it, with
`train_and_export` and the defaults (the encoder once per folder, at the most labels, then
head-only runs on it for fewer: it never sees a label), which measures the pixel baselines on
the same split in the same run. Then the run's 20 suggestions are labelled (their true classes
moved into the class folders) and the head trained again, and the same for 20 unlabelled images
drawn at random: the gain of each over the run without them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.datasets import DEFAULT_CACHE_DIR, Dataset, load_dataset
from training.folders import TEST_DIR, UNLABELLED_DIR, load_image_folder
from training.render import FOLDER, render
from training.suggest import DEFAULT_COUNT
from training.train import TrainConfig

logger = logging.getLogger(__name__)

TEST_IMAGES = 1000
SUFFIX = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg"}


@dataclass(frozen=True)
class Regime:
    dataset: str
    size: int
    labels: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset} {self.size} images, {self.labels}/class, seed {self.seed}"


def _suffix(data: bytes) -> str:
    return next(s for magic, s in SUFFIX.items() if data.startswith(magic))


@dataclass(frozen=True)
class Rendered:
    train: list[Path]
    train_labels: np.ndarray
    test: list[Path]
    test_labels: np.ndarray


def rendered(source: Dataset, size: int, seed: int, root: Path, tests: int) -> Rendered:
    """`size` training images and `tests` test images of `source`, rendered to files under
    root/train and root/test once (a second call finds them)."""
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(source.x_train))[:size]
    test = rng.permutation(len(source.x_test))[:tests]
    done = root / "done"
    if not done.exists():
        for part, images, picks in (
            ("train", source.x_train, train),
            ("test", source.x_test, test),
        ):
            folder = root / part
            folder.mkdir(parents=True, exist_ok=True)
            for n, i in enumerate(picks):
                look = np.random.default_rng([seed, n, part == "test"])
                data = render(images[i], FOLDER, look)
                (folder / f"{n:05d}{_suffix(data)}").write_bytes(data)
        done.touch()
    return Rendered(
        sorted((root / "train").iterdir()),
        source.y_train[train],
        sorted((root / "test").iterdir()),
        source.y_test[test],
    )


def lay_out(
    folder: Path,
    train: list[Path],
    labels: np.ndarray,
    labelled: np.ndarray,
    test: tuple[list[Path], np.ndarray],
    class_names: tuple[str, ...],
) -> Path:
    """A user's folder: labelled images in class folders, the rest in unlabelled/, test/."""
    shutil.rmtree(folder, ignore_errors=True)
    names = [name.replace("/", "-") for name in class_names]
    for position, path in enumerate(train):
        where = folder / names[labels[position]] if position in set(labelled) else None
        target = (where or folder / UNLABELLED_DIR) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    for path, label in zip(*test, strict=True):
        target = folder / TEST_DIR / names[label] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    return folder


def first_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def _train(folder: Path, config: TrainConfig, out: Path) -> dict[str, Any]:
    """train_and_export on the folder; what the benchmark keeps of the run."""
    from training.pipeline import train_and_export

    start = time.perf_counter()
    dataset = load_image_folder(folder)
    exported = train_and_export(
        dataset, config, out, out / ".reports", out / "report.md", verbose=0
    )
    metrics = json.loads((out / ".reports" / dataset.name / "metrics.json").read_text())
    few = metrics["few_labels"]
    return {
        "export": exported.path,
        "served": metrics["test"]["frozen"]["accuracy"],
        "baselines": few["baselines"]["pixels"],
        "graph": few["selection"]["graph"],
        "seconds": time.perf_counter() - start,
        "suggestions": out / ".reports" / dataset.name / few["suggestions"],
    }


def _objective(encoder: Path) -> dict[str, Any]:
    """The objective the encoder's run kept, with each candidate's cross-validated score."""
    training = json.loads((encoder / "manifest.json").read_text())["training"]
    chosen = training.get("objective_selection") or {}
    return {"objective": training["objective"], "cross_validation": chosen.get("cross_validation")}


def _suggested(csv_path: Path) -> list[str]:
    return [line.split(",")[1] for line in csv_path.read_text().splitlines()[1:]]


def regimes(
    datasets: list[str], sizes: list[int], labels: list[int], seeds: int
) -> Iterator[tuple[str, int, int, list[int]]]:
    # Seeds outermost: a run stopped early has every regime at the seeds it finished.
    for seed in range(seeds):
        for dataset in datasets:
            for size in sizes:
                yield dataset, size, seed, sorted(labels, reverse=True)


def small_data(
    datasets: list[str],
    sizes: list[int],
    labels: list[int],
    seeds: int,
    work: Path,
    config: TrainConfig,
    results: Path,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    test_images: int = TEST_IMAGES,
) -> dict[str, Any]:
    """Every regime's served accuracy, baselines, time and labelling gains, written to
    `results` as it goes (a regime already there is not run again)."""
    found: dict[str, Any] = json.loads(results.read_text()) if results.exists() else {}
    for run in found.values():  # results written before the objective was recorded
        if "objective" not in run and Path(run["encoder"], "manifest.json").exists():
            run["objective"] = _objective(Path(run["encoder"]))
    for name, size, seed, counts in regimes(datasets, sizes, labels, seeds):
        source = load_dataset(name, cache_dir=cache_dir)
        mirror = name != "mnist"
        base = replace(config, graph_mirror=mirror, seed=seed)
        root = work / f"{name}-{size}-{seed}"
        files = rendered(source, size, seed, root / "files", test_images)
        train_files, train_labels = files.train, files.train_labels
        test = (files.test, files.test_labels)
        position = {path.name: n for n, path in enumerate(train_files)}
        rng = np.random.default_rng([seed, 1])  # the random picks the suggestions are held to
        encoder_from: Path | None = None
        for per_class in counts:
            regime = Regime(name, size, per_class, seed)
            if regime.key in found:
                encoder_from = encoder_from or Path(found[regime.key]["encoder"])
                continue
            labelled = first_per_class(train_labels, per_class, seed)
            folder = lay_out(
                root / f"labels-{per_class}",
                train_files,
                train_labels,
                labelled,
                test,
                source.class_names,
            )
            run_config = replace(base, encoder_from=str(encoder_from) if encoder_from else None)
            run = _train(folder, run_config, root / f"models-{per_class}")
            encoder_from = encoder_from or run["export"]
            gains = {}
            unlabelled = np.setdiff1d(np.arange(len(train_files)), labelled)
            chosen = {
                "suggested": [position[Path(p).name] for p in _suggested(run["suggestions"])],
                "random": list(rng.choice(unlabelled, DEFAULT_COUNT, replace=False)),
            }
            head_only = replace(base, encoder_from=str(encoder_from))
            for how, extra in chosen.items():
                more = np.union1d(labelled, np.asarray(extra, dtype=np.int64))
                folder = lay_out(
                    root / f"labels-{per_class}-{how}",
                    train_files,
                    train_labels,
                    more,
                    test,
                    source.class_names,
                )
                again = _train(folder, head_only, root / f"models-{per_class}-{how}")
                gains[how] = again["served"] - run["served"]
            found[regime.key] = {
                "dataset": name,
                "size": size,
                "labels_per_class": per_class,
                "seed": seed,
                "served": run["served"],
                "baselines": run["baselines"],
                "graph": run["graph"],
                "seconds": run["seconds"],
                "encoder_trained": encoder_from == run["export"],
                "encoder": str(encoder_from),
                "objective": _objective(Path(encoder_from)),
                "gain": gains,
            }
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps(found, indent=2, default=str) + "\n")
            logger.info("%s: %s", regime.key, found[regime.key])
    return found
