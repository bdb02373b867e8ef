"""`label-curve`: the head on latents against raw pixels, from few labels to all."""

from __future__ import annotations

import argparse
from dataclasses import replace

from training.commands import Command
from training.commands.common import (
    config_from_manifest,
    data_arguments,
    head_argument,
    load_data,
    mirror,
    mirror_argument,
    model_dir_argument,
    output_paths,
    with_head,
)


def _labels(text: str) -> tuple[int | None, ...]:
    return tuple(None if item == "all" else int(item) for item in text.split(","))


def arguments(parser: argparse.ArgumentParser) -> None:
    data_arguments(parser)
    model_dir_argument(parser)
    parser.add_argument("--labels", type=_labels, default=(10, 30, 100, None))
    parser.add_argument("--seeds", type=int, default=3)
    head_argument(parser)
    mirror_argument(parser)


def run(args: argparse.Namespace) -> int:
    from training.pipeline import run_label_curve

    config = with_head(config_from_manifest(args.model_dir), args.head)
    print(
        run_label_curve(
            load_data(args),
            args.model_dir,
            replace(config, graph_mirror=mirror(args)),
            *output_paths(args),
            args.labels,
            tuple(range(args.seeds)),
        )
    )
    return 0


COMMAND = Command("label-curve", "latents vs raw pixels at few labels", arguments, run)
