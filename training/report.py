"""The generated markdown report (docs/training.md) over every dataset's results folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _check(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _dataset_section(name: str, metrics: dict[str, Any], folder: str) -> list[str]:
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
        f"| accuracy, frozen encoder + head | {_pct(frozen)} | "
        + (f"≥ {_pct(targets['frozen'])}: {_check(frozen >= targets['frozen'])}" if targets else "")
        + " |",
    ]
    if "fine_tuned" in test:
        tuned = test["fine_tuned"]["accuracy"]
        goal = targets.get("fine_tuned")
        check = f"≥ {_pct(goal)}: {_check(tuned >= goal)}" if goal else ""
        lines.append(f"| accuracy, fine-tuned encoder + head | {_pct(tuned)} | {check} |")
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
    check = f"< {goal}: {_check(rec['bce'] < goal)}" if goal else ""
    lines += [
        f"| reconstruction BCE per pixel | {rec['bce']:.4f} | {check} |",
        f"| reconstruction MSE per pixel | {rec['mse']:.4f} | |",
        f"| training wall time | {timings['total_s'] / 60:.1f} min | "
        f"≤ {limit} min: {_check(timings['total_s'] <= limit * 60)} |",
        "",
        "Per-class accuracy (frozen): "
        + ", ".join(f"{k} {_pct(v)}" for k, v in test["frozen"]["per_class_accuracy"].items()),
        "",
        *_few_label_lines(metrics),
        f"![reconstructions]({folder}/reconstructions.png)",
        "",
        f"![confusion matrix]({folder}/confusion.png)",
        "",
        f"![latent map]({folder}/latent_map.png)",
        "",
    ]
    return lines


def _few_label_lines(metrics: dict[str, Any]) -> list[str]:
    """A few-label run against its pixel baselines, the graph it chose, and warnings."""
    lines = [f"- Warning: {warning}" for warning in metrics.get("warnings") or []]
    few = metrics.get("few_labels")
    if not few:
        return [*lines, ""] if lines else []
    verdict, selection = few["baselines"], few["selection"]
    lines += [
        "",
        "Few labels, against pixel baselines on the same split and test images "
        "(training/baselines.py):",
        "",
        "| classifier | test accuracy |",
        "| --- | ---: |",
        f"| served: latents, labels propagated over the {selection['graph']} graph "
        f"| {_pct(verdict['served'])} |",
        *[f"| {name} | {_pct(value)} |" for name, value in verdict["pixels"].items()],
        "",
        (
            f"Ahead of the best pixel baseline ({verdict['best_baseline']}) by "
            f"{verdict['lead_points']:+.2f} points."
            if verdict["ahead"]
            else f"**Not ahead**: {verdict['best_baseline']} scores {-verdict['lead_points']:.2f} "
            "points more than the served classifier."
        ),
        f"Graph: {selection['graph']}, {selection['reason']}"
        + (
            " (" + ", ".join(f"{k} {v:.1%}" for k, v in selection["cross_validation"].items()) + ")"
            if selection["cross_validation"]
            else ""
        )
        + f". What to label next: `{few['suggestions']}` beside this run's metrics.",
        "",
    ]
    if "remeasured" in metrics:
        lines += _remeasured_lines(metrics["remeasured"])
    return lines


# How each head reads raw pixels in the baseline (training/label_curve.py).
PIXELS_AS = {"conv": "as a 28×28×1 image", "dense": "flattened, 784 values"}


def _versus(row: dict[str, Any], latent_key: str, pixels_key: str) -> str:
    """A label-curve table row: latents and pixels (mean ± std) and their difference."""
    latent, pixels = row[latent_key], row[pixels_key]
    return (
        f"| {row['labels_per_class']} | {_pct(latent['mean'])} ± {latent['std'] * 100:.2f} "
        f"| {_pct(pixels['mean'])} ± {pixels['std'] * 100:.2f} "
        f"| {(latent['mean'] - pixels['mean']) * 100:+.2f} points |"
    )


def _curve_section(name: str, curve: dict[str, Any], figure: str) -> list[str]:
    lines = [
        f"### Label efficiency, {name}, {curve['head']} head",
        "",
        f"Encoder `{curve['encoder']}`; the same {curve['head']} head on its latents and on raw "
        f"pixels ({PIXELS_AS[curve['head']]}), {len(curve['seeds'])} seeds "
        f"({', '.join(map(str, curve['seeds']))}), "
        "test accuracy mean ± std. Labelled validation images for early stopping are as "
        "scarce as the labelled training images.",
        "",
        "| labels per class | autoencoder latents | raw pixels | difference |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_versus(row, "latent", "pixels") for row in curve["rows"]]
    propagated = [r for r in curve["rows"] if "latent_propagated" in r]
    if propagated:
        lines += [
            "",
            "With the few labels propagated over a kNN graph of the same features to every "
            "training image, and the same head trained on all of them (training/propagation.py; "
            "with every label there is nothing to propagate, so that row repeats the plain "
            "head's):",
            "",
            "| labels per class | latents, propagated | raw pixels, propagated | difference |",
            "| --- | --- | --- | --- |",
        ]
        lines += [_versus(row, "latent_propagated", "pixels_propagated") for row in propagated]
    goal = TARGETS.get(name, {}).get("ten_labels")
    ten = next((r for r in curve["rows"] if r["labels_per_class"] == 10), None)
    hundred = next((r for r in propagated if r["labels_per_class"] == 100), None)
    if goal and ten and propagated:  # the targets are the few-label method's
        best, baseline = "latent_propagated", "pixels_propagated"
        gap = ten[best]["mean"] - ten[baseline]["mean"]
        lines += [
            "",
            "Targets at 10 labels per class, labels propagated: "
            f"≥ {_pct(goal)}: {_check(ten[best]['mean'] >= goal)} ({_pct(ten[best]['mean'])}); "
            f"≥ {MIN_GAIN_OVER_PIXELS * 100:.0f} points above raw pixels through the same "
            f"method: {_check(gap >= MIN_GAIN_OVER_PIXELS)} ({gap * 100:+.2f} points).",
        ]
        if hundred and "hundred_labels" in TARGETS.get(name, {}):
            mean = hundred["latent_propagated"]["mean"]
            target = TARGETS[name]["hundred_labels"]
            lines.append(
                f"At 100 labels per class: ≥ {_pct(target)}: {_check(mean >= target)} "
                f"({_pct(mean)})."
            )
    lines += ["", f"![label efficiency, {curve['head']} head]({figure})", ""]
    return lines


def _study_section(name: str, study: dict[str, Any]) -> list[str]:
    lines = [
        f"### What the label propagation is built on, {name}",
        "",
        f"`python -m training propagation-study`: encoder `{study['encoder']}`, "
        f"{study['labels_per_class']} labels per class, seeds "
        f"{', '.join(map(str, study['seeds']))}; the share of training images each variant "
        "labels right (before any head is trained).",
        "",
        "| graph | propagated labels right |",
        "| --- | --- |",
    ]
    lines += [f"| {row['variant']} | {_pct(row['mean'])} |" for row in study["rows"]]
    return [*lines, ""]


OOD_CHOICE = (
    "Why the served score is the Mahalanobis distance: it is the one score above the target "
    "for both models against both sets. Reconstruction errors fail the Fashion-MNIST model on "
    "digits, as the literature predicts: sparse digits reconstruct as well as clothes (BCE even "
    "better, an AUROC far below chance). Dividing by the image's PNG size (a complexity "
    "measure) helps but not enough; the softmax confidence is confidently wrong; the distance "
    "to the 10th nearest training latent misses noise. The latent's density is what separates."
)


def _ood_section(name: str, ood: dict[str, Any]) -> list[str]:
    spec, scores = ood["spec"], ood["scores"]
    sets = list(scores)
    lines = [
        f"### Out-of-distribution score, {name}",
        "",
        f"Export `{ood['export']}`. Fitted on the training split, calibrated on "
        f"{spec['calibration_source']}, evaluated on {name} test images (in distribution) "
        "against each set below (out of distribution), every image sent as a PNG through "
        "the service's own decoding. AUROC (1.0: perfect, 0.5: chance) and the false alarm "
        "rate on in-distribution images when 95% of the others are caught (FPR@95).",
        "",
        "| score | " + " | ".join(f"AUROC vs {s} | FPR@95 vs {s}" for s in sets) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in sets) + " |",
    ]
    for score in scores[sets[0]]:
        cells = [
            f"{scores[s][score]['auroc']:.3f} | {_pct(scores[s][score]['fpr_at_95_tpr'])}"
            for s in sets
        ]
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    chosen = spec["evaluation"]
    worst = min(result["auroc"] for result in chosen.values())
    threshold = spec["threshold"]
    lines += [
        "",
        OOD_CHOICE,
        "",
        f"Target, the served score's AUROC ≥ {MIN_OOD_AUROC} against every set: "
        f"{_check(worst >= MIN_OOD_AUROC)} (lowest {worst:.3f}). At the default threshold "
        f"(`ood_score` > {threshold}) the service flags "
        + ", ".join(
            f"{_pct(result['detected_at_threshold'])} of {s}" for s, result in chosen.items()
        )
        + f" and {_pct(next(iter(chosen.values()))['test_flagged_at_threshold'])} of "
        f"{name} test images.",
        "",
    ]
    return lines


def _robustness_section(name: str, data: dict[str, Any]) -> list[str]:
    rows = data["rows"]
    clean = rows[0]["accuracy"]
    framing = data["framing"]
    lines = [
        f"### Photos and scans, {name}",
        "",
        f"`python -m training robustness`: {data['images']} test images (seed {data['seed']}) "
        "rendered as files by training/render.py, each distortion alone on a dark-on-white "
        "112 px rendering, then all together as a photo or a scan, each file framed by the "
        f"service's own code (framing {framing['framing']}, box {framing['fit_box']} px"
        f"{', centred by mass' if framing['centre_of_mass'] else ''}) and classified by "
        f"`{data['export']}`. Refused: files the service answered with a 422 (counted wrong).",
        "",
        "| input | accuracy | vs clean | refused | decode + frame |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        drop = (row["accuracy"] - clean) * 100
        lines.append(
            f"| {row['name']} | {_pct(row['accuracy'])} | {drop:+.2f} | {row['refused']} "
            f"| {row['decode_ms']:.2f} ms |"
        )
    targets = list(FRAMING_TARGETS) + (["scan"] if data.get("item") == HANDWRITING else [])
    by_name = {row["name"]: row["accuracy"] for row in rows}
    checks = [
        f"{target} {_check(by_name[target] >= clean - MAX_FRAMING_DROP)} "
        f"({(by_name[target] - clean) * 100:+.2f})"
        for target in targets
        if target in by_name
    ]
    lines += [
        "",
        f"Targets, within {MAX_FRAMING_DROP * 100:.0f} points of the clean accuracy: "
        + "; ".join(checks)
        + ".",
        "",
    ]
    return lines


MIN_SMALL_DATA_LEAD = 0.05  # >= 5 labels per class: the best pixel baseline + 5 points
MIN_SUGGESTION_GAIN = 1.5  # labelling the suggested images gains 1.5x what random ones gain


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values) * 100:.1f} ± {np.std(values) * 100:.1f}"


def _remeasured_lines(record: dict[str, Any]) -> list[str]:
    """A version's pixel baselines measured again after its run (`training baselines`)."""
    verdict = record["remeasured"]
    listed = ", ".join(f"{name} {_pct(value)}" for name, value in verdict["pixels"].items())
    said = (
        f"ahead of the best ({verdict['best_baseline']}) by {verdict['lead_points']:+.2f} points"
        if verdict["ahead"]
        else f"**not ahead**: {verdict['best_baseline']} scores {-verdict['lead_points']:.2f} "
        "points more"
    )
    return [
        f"Pixel baselines measured again on {record['measured']} with today's "
        f"training/baselines.py (`python -m training baselines --model-dir {record['version']}`):"
        f" {listed}. The served {_pct(verdict['served'])} is {said}.",
        "",
    ]


def _small_data_section(runs: dict[str, Any]) -> list[str]:
    """The small-data benchmark: per dataset, folder size and labels, mean ± sd of 3 seeds."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for run in runs.values():
        key = (run["dataset"], run["size"], run["labels_per_class"])
        groups.setdefault(key, []).append(run)
    names = sorted({n for run in runs.values() for n in run["baselines"]})
    lines = [
        "## Small folders: few labels against pixels",
        "",
        "`python -m training small-data` (training/small_data.py): image folders rendered as "
        "users' folders look (training/render.py FOLDER), each trained with the defaults of "
        "`train --images`; test accuracy on 1,000 test images, mean ± sd over the seeds. Lead: "
        "the served classifier minus the best pixel baseline. Gain: test points won by labelling "
        "the run's 20 suggestions, and 20 random unlabelled images, then training again.",
        "",
        "| dataset | images | labels/class | seeds | served | "
        + " | ".join(names)
        + " | lead | gain, suggested | gain, random | minutes |",
        "| --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in names)
        + " | ---: | ---: | ---: | ---: |",
    ]
    failed: list[str] = []
    gains: dict[str, list[float]] = {"suggested": [], "random": []}
    for (dataset, size, per_class), group in sorted(groups.items()):
        served = [run["served"] for run in group]
        # A baseline only some runs measure (the unmirrored pixels, for clothing) is left blank.
        present = [n for n in names if all(n in run["baselines"] for run in group)]
        means = {n: float(np.mean([run["baselines"][n] for run in group])) for n in present}
        lead = float(np.mean(served)) - max(means.values())
        for how in gains:
            gains[how] += [run["gain"][how] for run in group]
        trained = [run["seconds"] for run in group if run["encoder_trained"]]
        minutes = f"{np.mean(trained) / 60:.1f}" if trained else "(head only)"
        lines.append(
            f"| {dataset} | {size} | {per_class} | {len(group)} | {_mean_sd(served)} | "
            + " | ".join(
                _mean_sd([run["baselines"][n] for run in group]) if n in means else "—"
                for n in names
            )
            + f" | {lead * 100:+.1f} | {_mean_sd([r['gain']['suggested'] for r in group])} "
            f"| {_mean_sd([r['gain']['random'] for r in group])} | {minutes} |"
        )
        goal = MIN_SMALL_DATA_LEAD if per_class >= 5 else 0.0
        if lead < goal:
            failed.append(f"{dataset} {size}/{per_class} ({lead * 100:+.1f})")
    ratio = float(np.mean(gains["suggested"])) / max(float(np.mean(gains["random"])), 1e-9)
    kept = [
        run["objective"]
        for run in runs.values()
        if run.get("encoder_trained") and "objective" in run
    ]
    lines += [
        "",
        f"Targets: with ≥ 5 labels per class, the best pixel baseline + "
        f"{MIN_SMALL_DATA_LEAD * 100:.0f} points, and never below it: "
        + (_check(True) if not failed else f"{_check(False)} in {', '.join(failed)}")
        + f". Labelling the suggested images gains ≥ {MIN_SUGGESTION_GAIN}× what random ones "
        f"gain: {_check(ratio >= MIN_SUGGESTION_GAIN)} ({ratio:.2f}×, "
        f"{np.mean(gains['suggested']) * 100:+.2f} against {np.mean(gains['random']) * 100:+.2f} "
        "points on average).",
        "",
    ]
    if kept:
        lines += _objectives_line(kept)
    return lines


def _objectives_line(kept: list[dict[str, Any]]) -> list[str]:
    """Which encoder objective each folder's run kept, and every candidate's score."""
    scores: dict[str, list[float]] = {}
    for choice in kept:
        for name, score in (choice.get("cross_validation") or {}).items():
            scores.setdefault(name, []).append(score)
    wins = {name: sum(c["objective"] == name for c in kept) for name in scores}
    listed = ", ".join(
        f"{name} kept {wins[name]} of {len(kept)} times (cross-validated {_mean_sd(values)})"
        for name, values in sorted(scores.items())
    )
    return [f"Encoder objective, chosen per folder on the labelled images only: {listed}.", ""]


def write_report(results_dir: Path, report_path: Path) -> Path:
    lines = [
        "# Training report",
        "",
        "Generated by `python -m training report` from the JSON files under "
        f"`{results_dir.as_posix()}/`; every number here was measured by the commands in "
        "docs/training-guide.md. Do not edit by hand.",
        "",
    ]
    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        relative = os.path.relpath(folder, report_path.parent)
        if (folder / "metrics.json").exists():
            metrics = json.loads((folder / "metrics.json").read_text())
            if (folder / "baselines.json").exists():  # measured again after the run
                metrics["remeasured"] = json.loads((folder / "baselines.json").read_text())
            lines += _dataset_section(folder.name, metrics, relative)
        elif not (folder / "small_data.json").exists():  # a version calibrated after training
            lines += [f"## {folder.name}", ""]
        for curve_file in sorted(folder.glob("label_curve_*.json")):
            figure = f"{relative}/{curve_file.with_suffix('.png').name}"
            lines += _curve_section(folder.name, json.loads(curve_file.read_text()), figure)
        if (folder / "propagation_study.json").exists():
            study = json.loads((folder / "propagation_study.json").read_text())
            lines += _study_section(folder.name, study)
        if (folder / "ood.json").exists():
            lines += _ood_section(folder.name, json.loads((folder / "ood.json").read_text()))
        if (folder / "small_data.json").exists():
            lines += _small_data_section(json.loads((folder / "small_data.json").read_text()))
        if (folder / "robustness.json").exists():
            robust = json.loads((folder / "robustness.json").read_text())
            lines += _robustness_section(folder.name, robust)
    report_path.write_text("\n".join(lines))
    return report_path
