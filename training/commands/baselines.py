"""`baselines`: measure an exported few-label version's pixel baselines again, on its own split
and test images, with today's training/baselines.py, and say whether it is still ahead.

A version keeps the verdict its run printed (manifest `training.baselines`); when the baselines
grow (a new one is added), this holds an existing version to them without training it again.
The served accuracy is the one the run recorded on the same test images."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import date

from app.contract.repository import read_manifest
from training.commands import Command, CommandError
from training.commands.common import (
    config_from_manifest,
    data_arguments,
    load_data,
    model_dir_argument,
    output_paths,
)

REMEASURED_FILE = "baselines.json"


def arguments(parser: argparse.ArgumentParser) -> None:
    model_dir_argument(parser)
    data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from training.baselines import Verdict, pixel_baselines
    from training.train import labelled_split, split_train_val

    recorded = read_manifest(args.model_dir).training.get("baselines")
    if not recorded:
        raise CommandError(
            f"{args.model_dir}: its run recorded no few-label verdict (trained with every "
            "label, or before verdicts were recorded): nothing to hold the baselines against"
        )
    dataset = load_data(args)
    config = config_from_manifest(args.model_dir)
    config = replace(config, model=replace(config.model, classes=len(dataset.class_names)))
    splits = split_train_val(dataset, config)
    labelled, _ = labelled_split(config, splits, config.seed)
    found = pixel_baselines(
        splits.x_train,
        labelled,
        splits.y_train[labelled],
        (dataset.x_test, dataset.y_test),
        config.model.classes,
        config.graph_mirror,
        config.mbo,
    )
    verdict = Verdict(float(recorded["served"]), found)
    for line in verdict.lines():
        print(line)
    results, report = output_paths(args)
    folder = results / read_manifest(args.model_dir).name
    folder.mkdir(parents=True, exist_ok=True)
    source = f"--images {args.images.as_posix()}" if args.images else f"--dataset {args.dataset}"
    record = {
        "version": args.model_dir.as_posix(),
        "command": f"python -m training baselines --model-dir {args.model_dir.as_posix()} {source}",
        "measured": date.today().isoformat(),
        "recorded": recorded,
        "remeasured": verdict.to_dict(),
    }
    path = folder / REMEASURED_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {path}; `python -m training report` puts it in {report}")
    return 0


COMMAND = Command(
    "baselines",
    "re-measure a few-label version's pixel baselines and say if it is ahead",
    arguments,
    run,
)
