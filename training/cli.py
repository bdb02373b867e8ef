"""`python -m training COMMAND`: datasets, training, evaluation and the model repository.

Commands (one module each under training/commands/; this list is checked against COMMANDS):

    prepare            cache every reachable dataset locally
    train              train, evaluate and export one model version
    suggest            the unlabelled images whose labels would help an exported version most
    baselines          re-measure a few-label version's pixel baselines and say if it is ahead
    label-curve        latents vs raw pixels at few labels
    propagation-study  what the label propagation's graph is built on, measured
    small-data         few labels on rendered image folders against pixel baselines
    robustness         photos and scans against clean images: accuracy per distortion
    index              build (or rebuild) the similarity index of an exported version
    calibrate          (re)calibrate the out-of-distribution score of an exported version
    embedding-space    fit the embedding calibration (int8, binary, dimensions) of a version
    litert             convert a version's graphs to LiteRT (served without TensorFlow)
    report             regenerate docs/training.md from the results
"""

from __future__ import annotations

import argparse
import logging
import sys

from training.commands import (
    Command,
    CommandError,
    baselines,
    calibrate,
    embedding_space,
    index,
    label_curve,
    litert,
    prepare,
    propagation_study,
    report,
    robustness,
    small_data,
    suggest,
    train,
)
from training.datasets import DatasetError

COMMANDS: tuple[Command, ...] = (
    prepare.COMMAND,
    train.COMMAND,
    suggest.COMMAND,
    baselines.COMMAND,
    label_curve.COMMAND,
    propagation_study.COMMAND,
    small_data.COMMAND,
    robustness.COMMAND,
    index.COMMAND,
    calibrate.COMMAND,
    embedding_space.COMMAND,
    litert.COMMAND,
    report.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.arguments(commands.add_parser(command.name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        return command.run(args)
    # The user's to fix, said plainly; anything else is a bug and keeps its traceback.
    except (DatasetError, CommandError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
