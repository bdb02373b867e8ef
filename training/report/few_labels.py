"""Few labels against pixels: a run's verdict, a version held to the baselines again, and
the small-data benchmark's table."""

from __future__ import annotations

from typing import Any

import numpy as np

from training.report.common import mean_sd, met, pct

MIN_SMALL_DATA_LEAD = 0.05  # >= 5 labels per class: the best pixel baseline + 5 points
MIN_SUGGESTION_GAIN = 1.5  # labelling the suggested images gains 1.5x what random ones gain


def few_label_lines(metrics: dict[str, Any]) -> list[str]:
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
        f"| {pct(verdict['served'])} |",
        *[f"| {name} | {pct(value)} |" for name, value in verdict["pixels"].items()],
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
        lines += remeasured_lines(metrics["remeasured"])
    return lines


def remeasured_lines(record: dict[str, Any]) -> list[str]:
    """A version's pixel baselines measured again after its run (`training baselines`)."""
    verdict = record["remeasured"]
    listed = ", ".join(f"{name} {pct(value)}" for name, value in verdict["pixels"].items())
    said = (
        f"ahead of the best ({verdict['best_baseline']}) by {verdict['lead_points']:+.2f} points"
        if verdict["ahead"]
        else f"**not ahead**: {verdict['best_baseline']} scores {-verdict['lead_points']:.2f} "
        "points more"
    )
    return [
        f"Pixel baselines measured again on {record['measured']} with today's "
        f"training/baselines.py (`{record['command']}`):"
        f" {listed}. The served {pct(verdict['served'])} is {said}.",
        "",
    ]


def small_data_section(runs: dict[str, Any]) -> list[str]:
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
            f"| {dataset} | {size} | {per_class} | {len(group)} | {mean_sd(served)} | "
            + " | ".join(
                mean_sd([run["baselines"][n] for run in group]) if n in means else "—"
                for n in names
            )
            + f" | {lead * 100:+.1f} | {mean_sd([r['gain']['suggested'] for r in group])} "
            f"| {mean_sd([r['gain']['random'] for r in group])} | {minutes} |"
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
        + (met(True) if not failed else f"{met(False)} in {', '.join(failed)}")
        + f". Labelling the suggested images gains ≥ {MIN_SUGGESTION_GAIN}× what random ones "
        f"gain: {met(ratio >= MIN_SUGGESTION_GAIN)} ({ratio:.2f}×, "
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
        f"{name} kept {wins[name]} of {len(kept)} times (cross-validated {mean_sd(values)})"
        for name, values in sorted(scores.items())
    )
    return [f"Encoder objective, chosen per folder on the labelled images only: {listed}.", ""]
