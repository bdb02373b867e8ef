"""Where `latentserve embed` writes: Parquet, or .npy with an ids file and a metadata file.

Rows are written while later chunks are still being embedded, in the source's order whatever
order the chunks finish in (`InOrder` holds back the few that finish early): writing 60,000
vectors at the end took 1.9-2.4 s of a 10 s run (docs/benchmarks.md). They go to
OUT.partial, renamed to OUT when the run is complete, so OUT is never half written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from latentserve.errors import LatentServeError

ROW_GROUP = 16_384
NPY_HEADER = 128  # bytes reserved for the .npy header, rewritten with the final shape


class Output(Protocol):
    def add(self, ids: list[str], vectors: np.ndarray) -> None: ...

    def finish(self) -> int:
        """Complete OUT; the number of rows."""
        ...


class InOrder:
    """Hands rows to an Output in position order; thread-safe. A position is either a row or
    skipped, and rows wait until every position before theirs has been settled."""

    def __init__(self, output: Output) -> None:
        self._output = output
        self._next = 0
        self._settled: dict[int, tuple[str, np.ndarray] | None] = {}
        self._lock = threading.Lock()

    def add(self, positions: Iterable[int], ids: list[str], vectors: np.ndarray) -> None:
        with self._lock:
            for position, id_, vector in zip(positions, ids, vectors, strict=True):
                self._settled[int(position)] = (id_, vector)
            self._drain()

    def skip(self, position: int) -> None:
        with self._lock:
            self._settled[position] = None
            self._drain()

    def _drain(self) -> None:
        ids, rows = [], []
        while self._next in self._settled:
            row = self._settled.pop(self._next)
            self._next += 1
            if row is not None:
                ids.append(row[0])
                rows.append(row[1])
        if ids:
            self._output.add(ids, np.stack(rows))

    def finish(self) -> int:
        """Complete the output; every position must have been settled by now."""
        with self._lock:
            if self._settled:
                raise LatentServeError(f"rows after position {self._next} were never settled")
            return self._output.finish()


def open_output(out: Path, model: str, version: int) -> Output:
    if out.suffix == ".parquet":
        return ParquetOutput(out, model, version)
    if out.suffix == ".npy":
        return NpyOutput(out, model, version)
    raise ValueError(f"{out}: the output is .parquet or .npy")


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class ParquetOutput:
    """Columns id, model, version, vector (a fixed-size list of float32)."""

    def __init__(self, out: Path, model: str, version: int) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise LatentServeError(
                "Parquet output needs pyarrow: pip install 'latentserve[parquet]'"
            ) from None
        self._pa, self._pq = pa, pq
        self.out, self.model, self.version = out, model, version
        self._writer: Any = None
        self._ids: list[str] = []
        self._vectors: list[np.ndarray] = []
        self.rows = 0

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._ids += ids
        self._vectors.append(vectors)
        if len(self._ids) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        pa = self._pa
        vectors = np.concatenate(self._vectors).astype(np.float32, copy=False)
        dim = vectors.shape[1]
        schema = pa.schema(
            [("id", pa.string()), ("model", pa.string()), ("version", pa.int32()),
             ("vector", pa.list_(pa.float32(), dim))]
        )  # fmt: skip
        if self._writer is None:
            # No dictionary, statistics or compression for the floats: they cost time and help
            # little (snappy saved 22% of 376 MB for 60,000 vectors and cost about a second).
            self._writer = self._pq.ParquetWriter(
                _partial(self.out),
                schema,
                use_dictionary=["id", "model"],
                write_statistics=["id", "model", "version"],
                compression="none",
            )
        count = len(self._ids)
        columns = [
            pa.array(self._ids, pa.string()),
            pa.array([self.model] * count, pa.string()),
            pa.array([self.version] * count, pa.int32()),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        ]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=schema))
        self.rows += count
        self._ids, self._vectors = [], []

    def finish(self) -> int:
        if self._ids:
            self._flush()
        if self._writer is None:  # nothing embedded: an empty table with the columns
            pa = self._pa
            empty = pa.schema(
                [("id", pa.string()), ("model", pa.string()), ("version", pa.int32())]
            )
            self._pq.write_table(empty.empty_table(), _partial(self.out))
        else:
            self._writer.close()
        os.replace(_partial(self.out), self.out)
        return self.rows


class NpyOutput:
    """OUT.npy (float32 rows), OUT.ids.txt (an id a line), OUT.json (model, version, shape).

    The vectors stream into the file behind a header space that is filled in at the end, when
    the number of rows is known (the .npy format pads its header with spaces)."""

    def __init__(self, out: Path, model: str, version: int) -> None:
        self.out, self.model, self.version = out, model, version
        self._data = _partial(out).open("wb")
        self._data.write(b" " * NPY_HEADER)
        self._ids: list[str] = []
        self._dim = 0

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        self._ids += ids
        self._dim = vectors.shape[1]
        self._data.write(np.ascontiguousarray(vectors, "<f4").tobytes())

    def finish(self) -> int:
        count = len(self._ids)
        header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({count}, {self._dim}), }}"
        prefix = b"\x93NUMPY\x01\x00" + (NPY_HEADER - 10).to_bytes(2, "little")
        self._data.seek(0)
        self._data.write(prefix + header.ljust(NPY_HEADER - 11).encode() + b"\n")
        self._data.close()
        stem = self.out.with_suffix("")
        Path(f"{stem}.ids.txt").write_text("".join(f"{i}\n" for i in self._ids))
        meta = {"model": self.model, "version": self.version, "count": count, "dim": self._dim}
        Path(f"{stem}.json").write_text(json.dumps(meta) + "\n")
        os.replace(_partial(self.out), self.out)
        return count
