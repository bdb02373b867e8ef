"""`latentserve embed SRC --out OUT`: embed a folder or array of images, resumably.

SRC is a folder of images (recursive; ids are paths relative to it), an .npy/.npz array or
an IDX file of uint8 images (ids are row numbers), or one image file. OUT is Parquet (columns
id, model, version, vector) or .npy (with OUT.ids.txt). Every request is pinned to one model
version, recorded in the output. Finished chunks are kept in OUT.parts/ as they arrive, so an
interrupted run picks up where it stopped; files that cannot be read or decoded are reported
with their path (and listed in OUT.skipped.tsv), never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentserve.client import AsyncClient
from latentserve.errors import InvalidImage
from latentserve.idx import read_idx
from latentserve.inputs import png
from latentserve.outputs import InOrder, open_output

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".pgm"}


@dataclass(frozen=True)
class Item:
    """One image of the source: its id and how to read it (lazily: 100,000 files)."""

    position: int
    id: str
    read: Callable[[], bytes]


def _array_items(array: np.ndarray) -> list[Item]:
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ValueError(f"an image array is uint8 (n, h, w), not {array.dtype} {array.shape}")
    return [Item(i, str(i), partial(png, row)) for i, row in enumerate(array)]


def source_array(src: Path) -> np.ndarray | None:
    """SRC's images when it is an array file (.npy, .npz, IDX), else None."""
    if src.suffix == ".npy":
        return np.asarray(np.load(src, allow_pickle=False))
    if src.suffix == ".npz":
        with np.load(src, allow_pickle=False) as arrays:
            return np.asarray(arrays[arrays.files[0]])
    if "idx" in src.name:
        return read_idx(src)
    return None


def sources(src: Path) -> list[Item]:
    """Every image of SRC, in a fixed order."""
    if src.is_dir():
        paths = [p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        paths.sort(key=str)  # comparing strings: Path's own ordering is 10x slower
        return [Item(i, p.relative_to(src).as_posix(), p.read_bytes) for i, p in enumerate(paths)]
    array = source_array(src)
    if array is not None:
        return _array_items(array)
    if src.is_file():
        return [Item(0, src.name, src.read_bytes)]
    raise FileNotFoundError(f"{src}: no such file or folder")


@dataclass
class Parts:
    """OUT.parts/: finished chunks (npz of positions, ids, vectors), the pinned version and the
    skipped files, all written as they happen so that a rerun resumes."""

    folder: Path
    model: str
    version: int
    done: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, folder: Path, model: str, version: int, explicit: bool = False) -> Parts:
        """The parts of a run pinned to `version` (a resumed run keeps its own version unless
        another one is asked for explicitly, which is an error)."""
        meta = folder / "meta.json"
        if meta.exists():
            pinned = json.loads(meta.read_text())
            if pinned["model"] != model or (explicit and version != pinned["version"]):
                raise ValueError(
                    f"{folder} holds {pinned['model']} version {pinned['version']}: finish with "
                    "the same model and version, or delete it to start over"
                )
            version = pinned["version"]
        else:
            folder.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"model": model, "version": version}))
        parts = cls(folder, model, int(version))
        for _, ids, _ in parts.earlier():
            parts.done.update(ids)
        parts.done.update(line.split("\t")[0] for line in parts.skipped_lines())
        return parts

    def earlier(self) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """Positions, ids and vectors of every chunk finished so far (by earlier runs)."""
        for part in sorted(self.folder.glob("part-*.npz")):
            with np.load(part, allow_pickle=False) as data:
                yield data["positions"], data["ids"].tolist(), data["vectors"]

    def write(self, items: list[Item], vectors: np.ndarray) -> None:
        positions, ids = np.array([i.position for i in items]), [i.id for i in items]
        name = f"part-{items[0].position:09d}.npz"
        staging = self.folder / f".{name}"
        with staging.open("wb") as handle:
            np.savez(handle, positions=positions, ids=np.array(ids), vectors=vectors)
        os.replace(staging, self.folder / name)  # a part is whole or absent

    def skip(self, item: Item, reason: str) -> None:
        logger.warning("skipped %s: %s", item.id, reason)
        with (self.folder / "skipped.tsv").open("a") as handle:
            handle.write(f"{item.id}\t{' '.join(reason.split())}\n")

    def skipped_lines(self) -> list[str]:
        path = self.folder / "skipped.tsv"
        return path.read_text().splitlines() if path.exists() else []


@dataclass
class Run:
    """One run: what it has persisted (Parts) and the output it streams to, in order."""

    parts: Parts
    ordered: InOrder
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def skip(self, item: Item, reason: str) -> None:
        self.parts.skip(item, reason)
        self.ordered.skip(item.position)

    def record(self, items: list[Item], vectors: np.ndarray) -> None:
        self.parts.write(items, vectors)
        self.ordered.add([i.position for i in items], [i.id for i in items], vectors)


def _read(chunk: list[Item], run: Run) -> tuple[list[bytes], list[Item]]:
    """The chunk's files, and the items they belong to; unreadable ones are skipped."""
    files, kept = [], []
    for item in chunk:
        try:
            files.append(item.read())
            kept.append(item)
        except OSError as err:
            run.skip(item, f"cannot read: {err}")
    return files, kept


async def _embed_chunk(client: AsyncClient, run: Run, chunk: list[Item]) -> int:
    """Embed one chunk, skipping (and reporting) what cannot be read or decoded."""
    files, kept = await asyncio.to_thread(_read, chunk, run)
    while kept:
        try:
            result = await client.embed(files, model=run.parts.model, version=run.parts.version)
        except InvalidImage as err:
            if err.index is None:
                raise
            run.skip(kept.pop(err.index), err.message)
            files.pop(err.index)
            continue
        async with run.lock:  # one chunk at a time into the output, off the event loop
            await asyncio.to_thread(run.record, kept, result.vectors)
        break
    return len(chunk)


def _batches(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def embed_folder(
    src: Path,
    out: Path,
    client: AsyncClient,
    model: str,
    version: int | None = None,
    concurrency: int = 8,
) -> tuple[int, int]:
    """Embed SRC into OUT; (images embedded, images skipped).

    One event loop drives every request (a thread per request in flight spent more time
    handing the GIL over than working: docs/benchmarks.md); reading files and writing go to
    a worker thread a chunk at a time.
    """
    if out.exists():
        raise ValueError(f"{out} exists; remove it (or pick another --out) to embed again")
    items = await asyncio.to_thread(sources, src)
    info = await client.model(model)
    parts = Parts.open(Path(f"{out}.parts"), model, version or info.version, version is not None)
    run = Run(parts, InOrder(open_output(out, parts.model, parts.version)))
    position = {item.id: item.position for item in items}
    for positions, ids, vectors in parts.earlier():  # what an interrupted run finished
        run.ordered.add(positions, ids, vectors)
    for line in parts.skipped_lines():
        run.ordered.skip(position[line.split("\t")[0]])
    todo = [item for item in items if item.id not in parts.done]
    gate = asyncio.Semaphore(concurrency)
    with tqdm(total=len(items), initial=len(items) - len(todo), unit="img", smoothing=0.1) as bar:

        async def one(chunk: list[Item]) -> None:
            async with gate:
                bar.update(await _embed_chunk(client, run, chunk))

        await asyncio.gather(*(one(c) for c in _batches(todo, info.limits.max_images)))
    return await asyncio.to_thread(finish, run, parts, out)


def finish(run: Run, parts: Parts, out: Path) -> tuple[int, int]:
    """Close OUT, list the skipped files beside it and remove the parts: (embedded, skipped)."""
    done = run.ordered.finish()
    skipped = parts.skipped_lines()
    if skipped:
        Path(f"{out}.skipped.tsv").write_text("\n".join(skipped) + "\n")
    for leftover in parts.folder.iterdir():
        leftover.unlink()
    parts.folder.rmdir()
    return done, len(skipped)
