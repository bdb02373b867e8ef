"""A training run's section: its metrics against the targets, and its figures."""

from __future__ import annotations

from typing import Any

from training.report.common import MAX_HEAD_ONLY_MINUTES, MAX_TRAIN_MINUTES, TARGETS, met, pct
from training.report.few_labels import few_label_lines


def dataset_section(name: str, metrics: dict[str, Any], folder: str) -> list[str]:
    test = metrics["test"]
    targets = TARGETS.get(name, {})
    frozen = test["frozen"]["accuracy"]
    timings, config = metrics["timings"], metrics["config"]
    reused = config.get("encoder_from")
    encoder_s = timings.get("encoder_s", timings.get("autoencoder_s", 0.0))  # older runs
    objective = config.get("objective", "autoencoder")
    part = (
        f"head only, on the encoder of `{reused}`"
        if reused
        else f"encoder ({objective}) {encoder_s:.0f} s"
    )
    seen = metrics["dataset"].get("labels_seen")
    lines = [
        f"## {name}",
        "",
        f"- Data: {metrics['dataset']['split']}.",
        f"- Exported as `{metrics['export']}`; training configuration in its manifest.",
        f"- Wall time: {timings['total_s']:.0f} s end to end ({part}) on {metrics['machine']}.",
        "",
        "| metric | value | target |",
        "| --- | --- | --- |",
        f"| accuracy, frozen encoder + head | {pct(frozen)} | "
        + (f"≥ {pct(targets['frozen'])}: {met(frozen >= targets['frozen'])}" if targets else "")
        + " |",
    ]
    if "fine_tuned" in test:
        tuned = test["fine_tuned"]["accuracy"]
        goal = targets.get("fine_tuned")
        check = f"≥ {pct(goal)}: {met(tuned >= goal)}" if goal else ""
        lines.append(f"| accuracy, fine-tuned encoder + head | {pct(tuned)} | {check} |")
    limit = MAX_HEAD_ONLY_MINUTES if reused else MAX_TRAIN_MINUTES
    if seen is not None and config.get("labels_per_class"):
        how = "the rest labelled by propagation" if config.get("propagate") else "no others"
        lines.insert(
            4,
            f"- Labels: {seen} labelled training images ({config['labels_per_class']} per class), "
            f"{how}.",
        )
    rec = test["reconstruction"]
    goal = targets.get("bce")
    check = f"< {goal}: {met(rec['bce'] < goal)}" if goal else ""
    lines += [
        f"| reconstruction BCE per pixel | {rec['bce']:.4f} | {check} |",
        f"| reconstruction MSE per pixel | {rec['mse']:.4f} | |",
        f"| training wall time | {timings['total_s'] / 60:.1f} min | "
        f"≤ {limit} min: {met(timings['total_s'] <= limit * 60)} |",
        "",
        "Per-class accuracy (frozen): "
        + ", ".join(f"{k} {pct(v)}" for k, v in test["frozen"]["per_class_accuracy"].items()),
        "",
        *few_label_lines(metrics),
        f"![reconstructions]({folder}/reconstructions.png)",
        "",
        f"![confusion matrix]({folder}/confusion.png)",
        "",
        f"![latent map]({folder}/latent_map.png)",
        "",
    ]
    return lines
