"""`robustness`: photos and scans against clean images, accuracy per distortion."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.commands import Command
from training.commands.common import output_paths, report_arguments
from training.datasets import DEFAULT_CACHE_DIR


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        required=True,
        help="models/<name>/<version>; repeat for several",
    )
    parser.add_argument("--images", type=int, default=2000, help="test images per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    report_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from training.report import write_report
    from training.robustness import robustness

    found = robustness(args.model_dir, args.images, args.seed, args.cache_dir)
    args.model_dir = args.model_dir[0]  # reports go where this repository's go
    results, report = output_paths(args)
    for name, record in found.items():
        (results / name).mkdir(parents=True, exist_ok=True)
        (results / name / "robustness.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}:")
        for row in record["rows"]:
            print(f"  {row['name']:26s} {row['accuracy'] * 100:6.2f}%  refused {row['refused']}")
    write_report(results, report)
    return 0


COMMAND = Command(
    "robustness",
    "photos and scans against clean images: accuracy per distortion (the framing)",
    arguments,
    run,
)
