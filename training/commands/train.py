"""`train`: train, evaluate and export one model version (and, with few labels, hold it against
pixel baselines and say what to label next)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import get_args

from training.commands import Command
from training.commands.common import (
    config_from_manifest,
    data_arguments,
    head_argument,
    index_images_argument,
    load_data,
    mirror,
    mirror_argument,
    output_paths,
    overridden,
    with_head,
)
from training.datasets import MIRROR_INVARIANT
from training.models import ModelConfig
from training.suggest import DEFAULT_COUNT
from training.train import GraphSetting, Objective, TrainConfig

# Chosen by measurement on the 2-core machine (docs/training.md); --quick is for demos and CI.
# The shipped all-label models: the plain autoencoder, with the budgets they were trained with
# (7 and 40 epochs then: 2,954 and 2,280 steps of 128 images).
DEFAULT_MODEL = ModelConfig(
    filters=(32, 32), head="conv", head_units=256, head_dropout=0.3, input_noise=0.1
)
DEFAULTS = {
    "fashion-mnist": TrainConfig(
        model=DEFAULT_MODEL,
        encoder_steps=2954,
        head_epochs=30,
        fine_tune_epochs=8,
        fine_tune_learning_rate=5e-4,
    ),
    "mnist": TrainConfig(
        model=DEFAULT_MODEL,
        encoder_steps=2280,
        head_epochs=100,
        fine_tune_epochs=30,
        fine_tune_learning_rate=1e-3,
        fine_tune_shift=2,
        graph_mirror=MIRROR_INVARIANT["mnist"],
    ),
}
# A user's own folder, mostly unlabelled: both objectives trained and the one whose latents
# cross-validate best over the labelled images kept (contrastive won for digits, the
# autoencoder for clothing: docs/experiments.md), budgets that fit a 2,000-image folder in
# 5 minutes on 2 cores, and a head that learns from views of each image too.
FOLDER = TrainConfig(
    model=replace(DEFAULT_MODEL, head="dense", input_noise=0.0),
    objective="select",
    encoder_steps=1200,
    autoencoder_steps=1000,
    head_epochs=100,
    head_views=2,
    head_steps=2000,
)
# Few labels on a standard dataset: the contrastive objective, as for folders, with a budget
# for its size (digits: 7,200 images; Fashion-MNIST: 54,000).
FEW_LABELS = {
    "fashion-mnist": replace(FOLDER, encoder_steps=4000, autoencoder_steps=2954),
    "mnist": replace(
        FOLDER, encoder_steps=3000, autoencoder_steps=2280, graph_mirror=MIRROR_INVARIANT["mnist"]
    ),
}
QUICK = TrainConfig(
    model=DEFAULT_MODEL,
    encoder_steps=200,
    head_epochs=10,
    fine_tune_epochs=1,
    max_train_images=12000,
)


def arguments(parser: argparse.ArgumentParser) -> None:
    data_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("models"), help="model repository")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--quick", action="store_true", help="small preset, a few minutes")
    parser.add_argument(
        "--labels-per-class", type=int, help="labelled images per class for the head"
    )
    head_argument(parser)
    parser.add_argument(
        "--objective",
        choices=get_args(Objective),
        help="what the encoder learns: autoencoder (reconstruction) or contrastive (views "
        "reconstructed clean and pulled together; the default for image folders)",
    )
    parser.add_argument("--encoder-steps", type=int, help="optimizer steps of the encoder")
    parser.add_argument(
        "--input-mask",
        type=float,
        metavar="SHARE",
        help="blank this share of 4x4 input patches while training the autoencoder "
        "(masked autoencoding; an experiment, docs/experiments.md)",
    )
    parser.add_argument("--head-epochs", type=int)
    parser.add_argument("--fine-tune", type=int, metavar="EPOCHS", help="0 disables fine-tuning")
    parser.add_argument("--max-train-images", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--encoder-from",
        type=Path,
        metavar="MODEL_DIR",
        help="train only a head on models/<name>/<version>'s encoder (copied unchanged, so its "
        "embeddings stay the same), e.g. a few-label head",
    )
    parser.add_argument(
        "--no-propagate",
        dest="propagate",
        action="store_false",
        help="with few labels, train the head on the labelled images only instead of "
        "propagating the labels over a kNN graph",
    )
    parser.add_argument(
        "--no-balance",
        dest="balance_classes",
        action="store_false",
        default=None,
        help="propagation: do not make the classes about equally large (for a folder whose "
        "classes differ much in size)",
    )
    parser.add_argument(
        "--graph",
        choices=get_args(GraphSetting),
        help="what the propagation's graph is built on (default: select, by cross-validation "
        "over the labelled images)",
    )
    parser.add_argument(
        "--mbo",
        action="store_true",
        default=None,
        help="propagation: refine the labels by Poisson-MBO (more training images labelled "
        "right on Fashion-MNIST; about 15 s more per 50,000 images)",
    )
    mirror_argument(parser)
    parser.add_argument(
        "--suggest",
        type=int,
        default=DEFAULT_COUNT,
        metavar="N",
        help="with few labels, list the N unlabelled images to label next (suggestions.csv)",
    )
    index_images_argument(parser)


def train_config(args: argparse.Namespace) -> TrainConfig:
    presets = FEW_LABELS if args.labels_per_class else DEFAULTS
    base = QUICK if args.quick else presets.get(args.dataset, FOLDER)
    if args.encoder_from:  # the encoder's settings are its own; the head's the preset's
        source = config_from_manifest(args.encoder_from)
        base = replace(
            base,
            model=replace(source.model, head=base.model.head, classes=source.model.classes),
            objective=source.objective,
            encoder_steps=source.encoder_steps,
            augmentation=source.augmentation,
            fine_tune_epochs=0,
            encoder_from=args.encoder_from.as_posix(),
        )
    overrides = {
        "propagate": args.propagate,
        "graph": args.graph,
        "balance_classes": args.balance_classes,
        "mbo": args.mbo,
        "graph_mirror": mirror(args),
        "labels_per_class": args.labels_per_class,
        "objective": args.objective,
        "encoder_steps": args.encoder_steps,
        "head_epochs": args.head_epochs,
        "fine_tune_epochs": args.fine_tune,
        "max_train_images": args.max_train_images,
        "seed": args.seed,
    }
    config = overridden(base, overrides)
    if args.input_mask is not None:
        config = replace(config, model=replace(config.model, input_mask=args.input_mask))
    return with_head(config, args.head)


def run(args: argparse.Namespace) -> int:
    from training.folders import labels_per_class_warning
    from training.pipeline import train_and_export

    dataset = load_data(args)
    config = train_config(args)
    if short := labels_per_class_warning(dataset, config.labels_per_class):
        dataset = replace(dataset, warnings=(*dataset.warnings, short))
    results, report = output_paths(args)
    exported = train_and_export(
        dataset,
        config,
        args.out,
        results,
        report,
        args.version,
        index_images=args.index_images,
        name=args.name,
        suggest=args.suggest,
    )
    for line in exported.summary:  # the run's verdict, plainly, at its end
        print(line, file=sys.stderr)
    print(f"report: {report}", file=sys.stderr)
    print(exported.path)
    return 0


COMMAND = Command("train", "train, evaluate and export one model version", arguments, run)
