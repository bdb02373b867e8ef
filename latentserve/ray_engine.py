"""`latentserve embed SRC --out OUT --engine ray`: the same output, embedded by a Ray cluster.

The local engine sends SRC to a running service; this one reads SRC as a Ray Dataset and runs
the version's encoder itself, in `map_batches` actors spread over the cluster's nodes (one per
node by default: each takes a CPU), decoding and framing every image with the service's own
code (app.contract.images, as the version's manifest says), so the vectors are the service's.
The model repository must be readable at the same path on every node; folder sources too.
Results stream back to this process, which writes them exactly as the local engine does:
finished batches into OUT.parts/ as they arrive (an interrupted run resumes), unreadable
images skipped with their reason, OUT in input order. Needs `latentserve[ray]`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from latentserve.bulk import Item, Parts, Run, finish, source_array, sources
from latentserve.inputs import png
from latentserve.outputs import InOrder, open_output

logger = logging.getLogger(__name__)

BATCH_IMAGES = 256


def _unread() -> bytes:  # Items rebuilt from results are only written, never read again
    return b""


class EmbedBatch:
    """A Ray Data actor: one version's encoder, and the service's image framing."""

    def __init__(self, version_dir: str) -> None:
        from app.contract.images import ImageOptions
        from app.contract.repository import verified_manifest
        from app.settings import Settings

        path = Path(version_dir)
        manifest = verified_manifest(path)
        # The runtime the service's default (`auto`) picks, so the vectors are /embed's.
        if manifest.litert is not None:
            from app.models.litert import load_litert_encoder

            self.encode = load_litert_encoder(path, manifest)
        else:
            from app.models.inference import load_encoder

            self.encode = load_encoder(path, manifest)
        default_pixels = Settings.model_fields["max_image_pixels"].default
        self.options = ImageOptions.for_input(manifest.input, default_pixels)
        self.dim = manifest.latent_dim

    def _pixels(self, row: dict[str, Any], index: int) -> np.ndarray:
        from app.contract.images import decode_image

        path = row.get("path")
        data = Path(path).read_bytes() if path else png(np.asarray(row["pixels"], np.uint8))
        return decode_image(data, self.options, index)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from app.contract.errors import ServiceError

        count = len(batch["position"])
        images, errors = [], [""] * count
        rows = [{name: batch[name][i] for name in batch} for i in range(count)]
        for i, row in enumerate(rows):
            try:
                images.append(self._pixels(row, i))
            except ServiceError as err:
                errors[i] = err.message
            except OSError as err:
                errors[i] = f"cannot read: {err}"
        vectors = np.zeros((count, self.dim), np.float32)
        good = [i for i in range(count) if not errors[i]]
        if good:
            vectors[good] = self.encode(np.stack(images))
        return {
            "position": batch["position"],
            "id": batch["id"],
            "vector": vectors,
            "error": np.array(errors, dtype=object),
        }


def _rows(items: list[Item], src: Path) -> list[dict[str, Any]]:
    """What the actors need of each item: a path on a shared file system, or the pixels."""
    array = None if src.is_dir() else source_array(src)
    if array is not None:
        return [{"position": i.position, "id": i.id, "path": "", "pixels": array[i.position]}
                for i in items]  # fmt: skip
    path = (lambda i: str(src / i.id)) if src.is_dir() else (lambda i: str(src))
    return [{"position": i.position, "id": i.id, "path": path(i)} for i in items]


def version_dir(repository: Path, model: str | None, version: int | None) -> Path:
    from app.contract.repository import latest_version, model_names

    name = model or model_names(repository)[0]
    if version is None:
        return latest_version(repository, name)[0]
    return repository / name / str(version)


def embed_with_ray(
    src: Path,
    out: Path,
    repository: Path,
    model: str | None = None,
    version: int | None = None,
    address: str | None = None,
    actors: int | None = None,
) -> tuple[int, int]:
    """Embed SRC into OUT on the Ray cluster at `address` (None: start a local one); (images
    embedded, images skipped)."""
    import ray

    if out.exists():
        raise ValueError(f"{out} exists; remove it (or pick another --out) to embed again")
    path = version_dir(repository.resolve(), model, version).resolve()
    name, number = path.parent.name, int(path.name)
    items = sources(src)
    parts = Parts.open(Path(f"{out}.parts"), name, number, version is not None)
    run = Run(parts, InOrder(open_output(out, parts.model, parts.version)))
    by_id = {item.id: item for item in items}
    for positions, ids, vectors in parts.earlier():  # what an interrupted run finished
        run.ordered.add(positions, ids, vectors)
    for line in parts.skipped_lines():
        run.ordered.skip(by_id[line.split("\t")[0]].position)
    todo = [item for item in items if item.id not in parts.done]
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        if todo:
            dataset = ray.data.from_items(_rows(todo, src.resolve()))
            embedded = dataset.map_batches(
                EmbedBatch,
                fn_constructor_kwargs={"version_dir": str(path)},
                batch_size=BATCH_IMAGES,
                concurrency=actors or nodes,
                num_cpus=1,
            )
            with tqdm(total=len(items), initial=len(items) - len(todo), unit="img") as bar:
                for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                    _record(run, by_id, batch)
                    bar.update(len(batch["id"]))
    finally:
        ray.shutdown()
    return finish(run, parts, out)


def _record(run: Run, by_id: dict[str, Item], batch: dict[str, np.ndarray]) -> None:
    kept, vectors = [], []
    for i, (item_id, error) in enumerate(zip(batch["id"], batch["error"], strict=True)):
        item = by_id[str(item_id)]
        if error:
            run.skip(item, str(error))
        else:
            kept.append(Item(item.position, item.id, _unread))
            vectors.append(batch["vector"][i])
    if kept:
        run.record(kept, np.stack(vectors))
