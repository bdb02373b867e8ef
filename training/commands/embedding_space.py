"""`embedding-space`: fit the embedding calibration (encodings, dimensions) of an exported
version."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.commands import Command
from training.commands.common import model_dir_argument
from training.datasets import DEFAULT_CACHE_DIR


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)
    parser.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)


def run(args: argparse.Namespace) -> int:
    from training.parts import space_existing

    print(space_existing(args.model_dir, args.data_dir, args.cache_dir).model_dump_json(indent=2))
    return 0


COMMAND = Command(
    "embedding-space",
    "fit the embedding calibration (int8, binary, dimensions) of a version",
    arguments,
    run,
)
