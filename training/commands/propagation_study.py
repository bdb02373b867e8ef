"""`propagation-study`: what the label propagation's graph is built on, measured."""

from __future__ import annotations

import argparse

from training.commands import Command
from training.commands.common import (
    config_from_manifest,
    data_arguments,
    load_data,
    model_dir_argument,
    output_paths,
)


def arguments(parser: argparse.ArgumentParser) -> None:
    data_arguments(parser)
    model_dir_argument(parser)
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)


def run(args: argparse.Namespace) -> int:
    from training.pipeline import run_propagation_study

    print(
        run_propagation_study(
            load_data(args),
            args.model_dir,
            config_from_manifest(args.model_dir),
            *output_paths(args),
            args.labels_per_class,
            tuple(range(args.seeds)),
        )
    )
    return 0


COMMAND = Command(
    "propagation-study", "what the label propagation's graph is built on, measured", arguments, run
)
