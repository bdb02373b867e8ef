"""`calibrate`: (re)calibrate the out-of-distribution score of an exported version."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.commands import Command
from training.commands.common import model_dir_argument, output_paths
from training.datasets import DEFAULT_CACHE_DIR


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)
    parser.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--results", type=Path, help="where ood.json goes (default as for train)")
    parser.add_argument("--report", type=Path)


def run(args: argparse.Namespace) -> int:
    from training.parts import calibrate_existing
    from training.report import write_report

    results, report = output_paths(args)
    print(calibrate_existing(args.model_dir, args.data_dir, args.cache_dir, results))
    write_report(results, report)
    return 0


COMMAND = Command(
    "calibrate",
    "(re)calibrate the out-of-distribution score of an exported version",
    arguments,
    run,
)
