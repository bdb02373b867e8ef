"""End-to-end runs: train -> evaluate -> export -> figures -> report, and the label curve."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from app.contract.repository import FRAMING as SERVICE_FRAMING
from app.contract.repository import (
    IMAGE_SIDE,
    DatasetInfo,
    InputSpec,
    LatentSpec,
    Manifest,
    signatures,
)
from training import figures
from training.datasets import FRAMING, ITEM, Dataset
from training.evaluate import evaluate
from training.export import export_repository, load_decoder, load_encoder
from training.few_labels import Judged, judge
from training.folders import FRAMING as FOLDER_FRAMING
from training.label_curve import DEFAULT_LABELS, DEFAULT_SEEDS, label_curve
from training.parts import calibration, keras_runner, training_reference, write_ood_results
from training.propagation_study import propagation_study
from training.report import write_report
from training.suggest import DEFAULT_COUNT, write_csv
from training.train import (
    PREDICT_BATCH,
    TrainConfig,
    TrainedModels,
    embed,
    split_train_val,
    train,
    train_head,
)

logger = logging.getLogger(__name__)

PREPROCESSING = (
    f"inside the encoder graph: uint8 pixels (batch, {IMAGE_SIDE}, {IMAGE_SIDE}), 0-255, light "
    "strokes on a dark background as in MNIST -> float32 / 255 -> "
    f"(batch, {IMAGE_SIDE}, {IMAGE_SIDE}, 1)"
)


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, TensorFlow {tf.__version__}"


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline test metrics that go into the manifest (no matrices)."""
    summary: dict[str, Any] = {
        "accuracy": metrics["frozen"]["accuracy"],
        "reconstruction_bce": metrics["reconstruction"]["bce"],
        "reconstruction_mse": metrics["reconstruction"]["mse"],
        "test_images": metrics["test_images"],
    }
    if "fine_tuned" in metrics:
        summary["fine_tuned_accuracy"] = metrics["fine_tuned"]["accuracy"]
    return summary


def describe(
    dataset: Dataset,
    config: TrainConfig,
    metrics: dict[str, Any],
    name: str | None = None,
    labels_seen: int | None = None,
    few_labels: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of a run, before export gives it a version, checksums and a time stamp."""
    latent = LatentSpec(shape=list(config.model.latent_shape), dim=config.model.latent_dim)
    return Manifest(
        name=name or dataset.name,
        version=0,
        dataset=DatasetInfo(
            name=dataset.name,
            split=dataset.split,
            train_images=len(dataset.x_train),
            test_images=len(dataset.x_test),
            item=ITEM.get(dataset.name),
            labels_seen=labels_seen,
        ),
        class_names=list(dataset.class_names),
        input=InputSpec.model_validate(
            {**FRAMING.get(dataset.name, FOLDER_FRAMING), "framing": SERVICE_FRAMING}
        ),
        latent=latent,
        preprocessing=PREPROCESSING,
        training=config.to_dict() | (few_labels or {}),
        metrics=_summary(metrics),
        signatures=signatures(latent.dim, len(dataset.class_names)),
        files={},
        created="",
    )


def write_figures(
    dataset: Dataset, latents: np.ndarray, decoder: Any, folder: Path, metrics: Any
) -> None:
    rebuilt = np.asarray(decoder.predict(latents[:10], batch_size=PREDICT_BATCH, verbose=0))
    figures.reconstructions(dataset.x_test, rebuilt, folder / "reconstructions.png")
    figures.confusion(
        np.asarray(metrics["frozen"]["confusion_matrix"]),
        dataset.class_names,
        folder / "confusion.png",
    )
    figures.latent_map(latents, dataset.y_test, dataset.class_names, folder / "latent_map.png")


def train_or_reuse(
    dataset: Dataset, config: TrainConfig, verbose: int
) -> tuple[TrainedModels, dict[str, Path]]:
    """Train everything, or (config.encoder_from) only a head on an exported version's encoder,
    whose encoder and decoder SavedModels are then copied unchanged."""
    if not config.encoder_from:
        return train(dataset, config, verbose=verbose), {}
    source = Path(config.encoder_from)
    encoder = load_encoder(source)
    decoder = load_decoder(source, config.model.latent_dim)
    keras.utils.set_random_seed(config.seed)
    splits = split_train_val(dataset, config)
    fitted = train_head(config, encoder, splits, verbose)
    trained = TrainedModels(
        encoder,
        decoder,
        fitted.head,
        None,
        {"head_s": fitted.seconds},
        {"head": fitted.history},
        fitted.labels,
        fitted.labels_given,
        fitted.few_labels,
        splits,
        config.objective,
    )
    return trained, {part: source / part for part in ("encoder", "decoder")}


@dataclass(frozen=True)
class Exported:
    """What a training run made: the version, and what it has to tell its user."""

    path: Path
    summary: list[str] = field(default_factory=list)
    """Lines for the end of the run: the few-label verdict, suggestions, warnings."""


def _few_label_record(judged: Judged, suggestions: Path) -> dict[str, Any]:
    return {
        "baselines": judged.verdict.to_dict(),
        "selection": judged.selection.to_dict(),
        "suggestions": suggestions.name,
    }


def train_and_export(
    dataset: Dataset,
    config: TrainConfig,
    out: Path,
    results_dir: Path,
    report_path: Path,
    version: int | None = None,
    verbose: int = 2,
    index_images: bool = False,
    name: str | None = None,
    suggest: int = DEFAULT_COUNT,
) -> Exported:
    start = time.perf_counter()
    config = replace(config, model=replace(config.model, classes=len(dataset.class_names)))
    trained, copied = train_or_reuse(dataset, config, verbose)
    config = replace(config, objective=trained.objective)  # the one kept, when chosen
    test_latents = embed(trained.encoder, dataset.x_test)  # one pass, for metrics and figures
    metrics = evaluate(trained, dataset, test_latents)
    folder = results_dir / (name or dataset.name)
    folder.mkdir(parents=True, exist_ok=True)
    judged, few_label_record, summary = None, {}, list(dataset.warnings)
    if trained.few_labels is not None and trained.splits is not None:
        served = float(metrics["frozen"]["accuracy"])  # type: ignore[index]
        judged = judge(dataset, trained.few_labels, trained.splits, config, served, suggest)
        suggestions = write_csv(
            folder / "suggestions.csv", judged.suggestions, judged.ids, dataset.class_names
        )
        few_label_record = _few_label_record(judged, suggestions)
        if trained.objective_selection is not None:
            few_label_record["objective_selection"] = trained.objective_selection.to_dict()
            summary.append(f"objective: {trained.objective} ({trained.objective_selection.reason})")
        summary += judged.verdict.lines()
        summary.append(f"graph: {judged.selection.choice.name} ({judged.selection.reason})")
        summary.append(f"what to label next: {suggestions} ({len(judged.suggestions)} images)")
    manifest = describe(dataset, config, metrics, name, trained.labels_given, few_label_record)
    parts = {"encoder": trained.encoder, "decoder": trained.decoder, "classifier": trained.head}
    every_label = config.labels_per_class is None and bool(np.all(dataset.y_train >= 0))
    reference = training_reference(
        dataset, trained.encoder, test_latents, index_images, labelled=every_label
    )
    run = keras_runner(trained.encoder, trained.head, trained.decoder)
    ood = calibration(dataset, config, manifest, run, head_labels=trained.head_labels)
    exported = export_repository(parts, out, manifest, version, reference, ood, copied)
    write_ood_results(results_dir, manifest.name, exported, ood)
    write_figures(dataset, test_latents, trained.decoder, folder, metrics)
    timings = {**trained.timings, "total_s": time.perf_counter() - start}
    record = {
        "dataset": manifest.dataset.model_dump(),
        "export": exported.as_posix(),
        "machine": machine(),
        "config": config.to_dict(),
        "timings": timings,
        "history": {k: {n: v[-1] for n, v in h.items() if v} for k, h in trained.history.items()},
        "test": metrics,
        "few_labels": few_label_record or None,
        "warnings": list(dataset.warnings),
    }
    (folder / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    write_report(results_dir, report_path)
    logger.info("done in %.0f s: %s", timings["total_s"], _summary(metrics))
    return Exported(exported, summary)


def run_label_curve(
    dataset: Dataset,
    encoder_dir: Path,
    config: TrainConfig,
    results_dir: Path,
    report_path: Path,
    labels: tuple[int | None, ...] = DEFAULT_LABELS,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
) -> Path:
    rows = label_curve(dataset, load_encoder(encoder_dir), config, labels, seeds)
    folder = results_dir / dataset.name
    folder.mkdir(parents=True, exist_ok=True)
    head = config.model.head
    # One file per head: the shipped conv head and the reference dense head both have a curve.
    path = folder / f"label_curve_{head}.json"
    record = {"encoder": encoder_dir.as_posix(), "head": head, "seeds": list(seeds)}
    path.write_text(json.dumps({**record, "rows": rows}, indent=2) + "\n")
    figures.label_curve(
        rows, f"label efficiency, {dataset.name}, {head} head", path.with_suffix(".png")
    )
    write_report(results_dir, report_path)
    return path


def run_propagation_study(
    dataset: Dataset,
    encoder_dir: Path,
    config: TrainConfig,
    results_dir: Path,
    report_path: Path,
    per_class: int,
    seeds: tuple[int, ...],
) -> Path:
    rows = propagation_study(dataset, load_encoder(encoder_dir), config, per_class, seeds)
    folder = results_dir / dataset.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "propagation_study.json"
    record = {"encoder": encoder_dir.as_posix(), "labels_per_class": per_class}
    record["seeds"] = list(seeds)
    path.write_text(json.dumps({**record, "rows": rows}, indent=2) + "\n")
    write_report(results_dir, report_path)
    return path
