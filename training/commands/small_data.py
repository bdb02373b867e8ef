"""`small-data`: few labels on rendered image folders against pixel baselines, with the gain
of labelling the suggested images; the table in docs/training.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from training.commands import Command
from training.commands.common import DEFAULT_REPORT, DEFAULT_RESULTS, overridden
from training.datasets import DEFAULT_CACHE_DIR
from training.train import GraphSetting, Objective, TrainConfig


def _numbers(text: str) -> list[int]:
    return [int(item) for item in text.split(",")]


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", default="fashion-mnist,mnist")
    parser.add_argument("--sizes", type=_numbers, default=[1000, 5000], help="images per folder")
    parser.add_argument("--labels", type=_numbers, default=[1, 5, 10], help="labels per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("bench/out/small-data"),
        help="where the folders are rendered and trained (kept: a rerun resumes)",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    # Experiments against the defaults (docs/experiments.md); give them their own --work,
    # --results and --report so the documented table stays the defaults'.
    parser.add_argument(
        "--objective", choices=get_args(Objective), help="the encoder's (default: select)"
    )
    parser.add_argument(
        "--encoder-steps", type=int, help="the contrastive encoder's steps (default: train's)"
    )
    parser.add_argument(
        "--autoencoder-steps", type=int, help="the autoencoder's steps (default: train's)"
    )
    parser.add_argument(
        "--graph", choices=get_args(GraphSetting), help="the propagation's graph (default: select)"
    )
    parser.add_argument(
        "--mbo", action="store_true", default=None, help="propagation refined by Poisson-MBO"
    )


def folder_config(args: argparse.Namespace) -> TrainConfig:
    """train's defaults for a folder, with the experiment's overrides."""
    from training.commands.train import FOLDER

    return overridden(
        FOLDER,
        {
            "objective": args.objective,
            "encoder_steps": args.encoder_steps,
            "autoencoder_steps": args.autoencoder_steps,
            "graph": args.graph,
            "mbo": args.mbo,
        },
    )


def run(args: argparse.Namespace) -> int:
    from training.report import write_report
    from training.small_data import small_data

    results = args.results / "small-data" / "small_data.json"
    small_data(
        args.datasets.split(","),
        args.sizes,
        args.labels,
        args.seeds,
        args.work,
        folder_config(args),
        results,
        args.cache_dir,
    )
    print(write_report(args.results, args.report))
    return 0


COMMAND = Command(
    "small-data",
    "few labels on rendered image folders against pixel baselines",
    arguments,
    run,
)
