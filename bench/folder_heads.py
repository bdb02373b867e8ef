"""The served head trained on labels from each candidate graph, on small folders (issue 24;
docs/experiments.md, nineteenth session):

    .venv/bin/python -m training small-data --datasets fashion-mnist   # the folders, encoders
    .venv/bin/python bench/folder_heads.py [bench/out/small-data] [--graphs latent,latent+pixels]

bench/folder_graphs.py compares the graphs by a vote of the test images' neighbours; this goes
through to what a user gets: for every folder the small-data benchmark laid out (its work
directory is kept) and every labelled layout in it, with the run's own configuration (its
manifest) and encoder: the graph the run's selection would choose now, and for each graph of
`training/selection.py` `candidate_vectors` (the run's own code, forced with `graph`) the
labels propagated over it, the head trained as the run trains it, and its accuracy on the
folder's test images. Printed beside it: the served accuracy and best pixel baseline that
folder's run recorded (docs/results/small-data/small_data.json).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from training.commands.common import config_from_manifest
from training.export import load_encoder
from training.folders import load_image_folder
from training.heads import embed
from training.propagation import mirrored
from training.selection import candidate_vectors, select_graph
from training.train import Splits, TrainConfig, labelled_split, split_train_val, train_head

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs/results/small-data/small_data.json"


def latest(models: Path) -> Path:
    versions = [p for p in models.glob("labels-*/*") if p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name))


def selected(config: TrainConfig, encoder: keras.Model, splits: Splits) -> str:
    """The graph the run's selection (training/selection.py, as it is now) chooses."""
    labelled, _ = labelled_split(config, splits, config.seed)
    x, y = splits.x_train, splits.y_train
    flipped = embed(encoder, mirrored(x)) if config.graph_mirror else None
    vectors = candidate_vectors(embed(encoder, x), flipped, x)
    classes = config.model.classes
    choice = select_graph(
        vectors, labelled, y[labelled], classes, config.seed, config.balance_classes
    )
    return choice.choice.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="?", default=ROOT / "bench/out/small-data")
    parser.add_argument(
        "--graphs", default="latent,latent+pixels", help="comma-separated; '' for none"
    )
    args = parser.parse_args()
    graphs = [graph for graph in args.graphs.split(",") if graph]
    chosen: dict[str, int] = defaultdict(int)
    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows: dict[tuple[str, int, int], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for root in sorted(p for p in args.work.iterdir() if (p / "models-10").is_dir()):
        name, size, seed = root.name.rsplit("-", 2)
        for per_class in (1, 5, 10):
            version = latest(root / f"models-{per_class}")
            encoder = load_encoder(version)
            data = load_image_folder(root / f"labels-{per_class}")
            config = replace(config_from_manifest(version), labels_per_class=per_class)
            splits = split_train_val(data, config)
            test = embed(encoder, data.x_test)
            key = f"{name} {size} images, {per_class}/class, seed {seed}"
            row = rows[(name, int(size), per_class)]
            line = [f"selection chooses {selected(config, encoder, splits)}"]
            chosen[line[0]] += 1
            for graph in graphs:
                keras.utils.set_random_seed(config.seed)  # as the run trains its head
                fitted = train_head(replace(config, graph=graph), encoder, splits)
                predicted = fitted.head.predict(test, batch_size=1024, verbose=0).argmax(axis=1)
                accuracy = float(np.mean(predicted == data.y_test))
                row[graph].append(accuracy)
                line.append(f"{graph} {accuracy:.3f}")
            if key in recorded:
                run = recorded[key]
                row["served"].append(run["served"])
                row["best pixels"].append(max(run["baselines"].values()))
                line.append(f"served {run['served']:.3f}, best pixels "
                            f"{max(run['baselines'].values()):.3f}")  # fmt: skip
            print(f"{key}: " + "; ".join(line), flush=True)
    print("\n" + "; ".join(f"{what}: {count}" for what, count in sorted(chosen.items())))
    columns = ["served", *graphs, "best pixels"]
    print()
    print("| folder | labels/class | " + " | ".join(columns) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in columns) + " |")
    for (dataset, images, count), row in sorted(rows.items()):
        cells = [f"{np.mean(row[c]) * 100:.1f}" if row.get(c) else "—" for c in columns]
        print(f"| {dataset} {images} | {count} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
