"""`suggest`: the unlabelled images of a folder (or dataset) whose labels would help an
exported version most, as a CSV of paths and current guesses."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import get_args

from training.commands import Command
from training.commands.common import (
    config_from_manifest,
    data_arguments,
    load_data,
    model_dir_argument,
)
from training.suggest import DEFAULT_COUNT
from training.train import GraphSetting


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)
    data_arguments(parser)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="images to suggest")
    parser.add_argument(
        "--labels-per-class",
        type=int,
        help="a dataset's labelled images per class (default: the version's own)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("suggestions.csv"), help="the CSV to write"
    )


def run(args: argparse.Namespace) -> int:
    from training.export import load_encoder
    from training.few_labels import propagated_labels
    from training.heads import embed
    from training.suggest import suggest, write_csv
    from training.train import labelled_split, split_train_val

    dataset = load_data(args)
    config = config_from_manifest(args.model_dir)
    config = replace(
        config,
        labels_per_class=args.labels_per_class or config.labels_per_class,
        model=replace(config.model, classes=len(dataset.class_names)),
    )
    selection = _recorded_graph(args.model_dir)
    if selection:
        config = replace(config, graph=selection)  # the graph the version's own run chose
    encoder = load_encoder(args.model_dir)
    splits = split_train_val(dataset, config)
    labelled, _ = labelled_split(config, splits, config.seed)
    latents = embed(encoder, splits.x_train)
    few = propagated_labels(config, latents, encoder, splits.x_train, splits.y_train, labelled)
    picked = suggest(few.vectors, few.propagated, few.labelled, args.count)
    ids = [dataset.train_id(int(splits.train_index[item.position])) for item in picked]
    path = write_csv(args.out, picked, ids, dataset.class_names)
    for item, image in zip(picked, ids, strict=True):
        guess = dataset.class_names[item.guess]
        print(f"{image}\tnow guessed {guess} ({item.confidence:.2f})")
    print(f"written to {path}")
    return 0


def _recorded_graph(version_dir: Path) -> GraphSetting | None:
    """The graph features the version's training run chose, if it recorded them."""
    from app.contract.repository import read_manifest

    selection = read_manifest(version_dir).training.get("selection") or {}
    features = selection.get("features")
    return next((g for g in get_args(GraphSetting) if g == features), None)


COMMAND = Command(
    "suggest",
    "the unlabelled images whose labels would help an exported version most",
    arguments,
    run,
)
