"""Arguments and conventions several commands share: where data comes from, where reports go,
and the configuration an exported version was trained with."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from app.contract.repository import read_manifest
from training.datasets import CLASS_NAMES, DEFAULT_CACHE_DIR, MIRROR_INVARIANT, Dataset
from training.models import HeadKind
from training.train import TrainConfig

DEFAULT_RESULTS = Path("docs/results")
DEFAULT_REPORT = Path("docs/training.md")
REPORTS_DIR = ".reports"
"""Where runs into any other repository report: inside it, hidden, so the service (which
skips hidden directories) never mistakes the reports for a model."""


def data_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=sorted(CLASS_NAMES))
    source.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="your own images: DIR/<class>/..., optional DIR/unlabelled/ and DIR/test/<class>/ "
        "(README, 'Training on your own images')",
    )
    parser.add_argument("--name", help="model name (default: the dataset's, or DIR's name)")
    parser.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--source",
        choices=("auto", "keras"),
        default="auto",
        help="auto: offline sources only; keras: Keras' downloader (needs the internet)",
    )
    report_arguments(parser)


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        help="metrics and figures (default: docs/results for --out models, "
        f"else OUT/{REPORTS_DIR}/results)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="generated report (default: docs/training.md for --out models, "
        f"else OUT/{REPORTS_DIR}/training.md)",
    )


def load_data(args: argparse.Namespace) -> Dataset:
    """The dataset or image folder the arguments name (DatasetError when it cannot be had)."""
    if args.images:
        from training.folders import load_image_folder

        return load_image_folder(args.images, args.name)
    from training.datasets import load_dataset

    return load_dataset(args.dataset, args.data_dir, args.cache_dir, args.source)


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """Runs into the shipped repository report under docs/; other runs under OUT/.reports/."""
    out = Path(getattr(args, "out", None) or args.model_dir.parent.parent)
    shipped = out.resolve() == Path("models").resolve()
    results = args.results or (DEFAULT_RESULTS if shipped else out / REPORTS_DIR / "results")
    report = args.report or (DEFAULT_REPORT if shipped else out / REPORTS_DIR / "training.md")
    return results, report


def model_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, required=True, help="models/<name>/<version>")


def index_images_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-images",
        action="store_true",
        help="store the reference images in the similarity index, for /similar?images=true "
        "and the demo page (1.3 MB for 8,000 digits, 26 MB for 60,000 Fashion-MNIST images)",
    )


def head_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--head",
        choices=get_args(HeadKind),
        help="classifier head: conv (best with many labels) or dense (the reference, better "
        "with few; the default for image folders; docs/experiments.md)",
    )


def mirror_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--graph-mirror",
        action=argparse.BooleanOptionalAction,
        help="propagation: treat an image and its mirror image as neighbours (default: yes, "
        "but not for digits, whose mirror images are other symbols)",
    )


def mirror(args: argparse.Namespace) -> bool:
    if args.graph_mirror is not None:
        return bool(args.graph_mirror)
    return MIRROR_INVARIANT.get(args.dataset, True)


def config_from_manifest(version_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_manifest(version_dir).training)


def overridden(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """`config` with each override the command line gave (None: not given, keep the preset's)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def with_head(config: TrainConfig, head: HeadKind | None) -> TrainConfig:
    return replace(config, model=replace(config.model, head=head)) if head else config
