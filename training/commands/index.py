"""`index`: build (or rebuild) the similarity index of an exported version."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.commands import Command
from training.commands.common import index_images_argument, model_dir_argument
from training.datasets import DEFAULT_CACHE_DIR


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)
    parser.add_argument(
        "--images",
        type=Path,
        help="folder of reference images (recursive; sub-folders named after classes label "
        "theirs); default: the training split of the version's dataset",
    )
    parser.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    index_images_argument(parser)


def run(args: argparse.Namespace) -> int:
    from training.parts import index_existing

    print(
        index_existing(
            args.model_dir, args.images, args.data_dir, args.cache_dir, args.index_images
        )
    )
    return 0


COMMAND = Command(
    "index", "build (or rebuild) the similarity index of an exported version", arguments, run
)
