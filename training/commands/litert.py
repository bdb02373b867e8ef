"""`litert`: add the LiteRT graphs (served without TensorFlow) to an exported version."""

from __future__ import annotations

import argparse

from training.commands import Command
from training.commands.common import model_dir_argument


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    from training.parts import litert_existing

    print(litert_existing(args.model_dir).model_dump_json(indent=2))
    return 0


COMMAND = Command(
    "litert",
    "convert a version's graphs to LiteRT (served without TensorFlow)",
    arguments,
    run,
)
