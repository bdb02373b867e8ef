"""The studies' sections: label curves, the propagation study, the out-of-distribution
score and photos and scans."""

from __future__ import annotations

from typing import Any

from training.report.common import (
    FRAMING_TARGETS,
    HANDWRITING,
    MAX_FRAMING_DROP,
    MIN_GAIN_OVER_PIXELS,
    MIN_OOD_AUROC,
    TARGETS,
    met,
    pct,
)

# How each head reads raw pixels in the baseline (training/label_curve.py).
PIXELS_AS = {"conv": "as a 28×28×1 image", "dense": "flattened, 784 values"}


def _versus(row: dict[str, Any], latent_key: str, pixels_key: str) -> str:
    """A label-curve table row: latents and pixels (mean ± std) and their difference."""
    latent, pixels = row[latent_key], row[pixels_key]
    return (
        f"| {row['labels_per_class']} | {pct(latent['mean'])} ± {latent['std'] * 100:.2f} "
        f"| {pct(pixels['mean'])} ± {pixels['std'] * 100:.2f} "
        f"| {(latent['mean'] - pixels['mean']) * 100:+.2f} points |"
    )


def curve_section(name: str, curve: dict[str, Any], figure: str) -> list[str]:
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
            f"≥ {pct(goal)}: {met(ten[best]['mean'] >= goal)} ({pct(ten[best]['mean'])}); "
            f"≥ {MIN_GAIN_OVER_PIXELS * 100:.0f} points above raw pixels through the same "
            f"method: {met(gap >= MIN_GAIN_OVER_PIXELS)} ({gap * 100:+.2f} points).",
        ]
        if hundred and "hundred_labels" in TARGETS.get(name, {}):
            mean = hundred["latent_propagated"]["mean"]
            target = TARGETS[name]["hundred_labels"]
            lines.append(
                f"At 100 labels per class: ≥ {pct(target)}: {met(mean >= target)} ({pct(mean)})."
            )
    lines += ["", f"![label efficiency, {curve['head']} head]({figure})", ""]
    return lines


def study_section(name: str, study: dict[str, Any]) -> list[str]:
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
    lines += [f"| {row['variant']} | {pct(row['mean'])} |" for row in study["rows"]]
    return [*lines, ""]


OOD_CHOICE = (
    "Why the served score is the Mahalanobis distance: it is the one score above the target "
    "for both models against both sets. Reconstruction errors fail the Fashion-MNIST model on "
    "digits, as the literature predicts: sparse digits reconstruct as well as clothes (BCE even "
    "better, an AUROC far below chance). Dividing by the image's PNG size (a complexity "
    "measure) helps but not enough; the softmax confidence is confidently wrong; the distance "
    "to the 10th nearest training latent misses noise. The latent's density is what separates."
)


def ood_section(name: str, ood: dict[str, Any]) -> list[str]:
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
            f"{scores[s][score]['auroc']:.3f} | {pct(scores[s][score]['fpr_at_95_tpr'])}"
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
        f"{met(worst >= MIN_OOD_AUROC)} (lowest {worst:.3f}). At the default threshold "
        f"(`ood_score` > {threshold}) the service flags "
        + ", ".join(
            f"{pct(result['detected_at_threshold'])} of {s}" for s, result in chosen.items()
        )
        + f" and {pct(next(iter(chosen.values()))['test_flagged_at_threshold'])} of "
        f"{name} test images.",
        "",
    ]
    return lines


def robustness_section(name: str, data: dict[str, Any]) -> list[str]:
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
            f"| {row['name']} | {pct(row['accuracy'])} | {drop:+.2f} | {row['refused']} "
            f"| {row['decode_ms']:.2f} ms |"
        )
    targets = list(FRAMING_TARGETS) + (["scan"] if data.get("item") == HANDWRITING else [])
    by_name = {row["name"]: row["accuracy"] for row in rows}
    checks = [
        f"{target} {met(by_name[target] >= clean - MAX_FRAMING_DROP)} "
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
