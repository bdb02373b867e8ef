"""`report`: regenerate docs/training.md from the results."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.commands import Command
from training.commands.common import DEFAULT_REPORT, DEFAULT_RESULTS


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)


def run(args: argparse.Namespace) -> int:
    from training.report import write_report

    print(write_report(args.results, args.report))
    return 0


COMMAND = Command("report", "regenerate docs/training.md from the results", arguments, run)
