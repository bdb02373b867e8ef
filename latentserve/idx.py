"""IDX files (the MNIST family's format): unsigned bytes with a shape header, maybe gzipped.

Read by the bulk embedding command and, through this module, by training's dataset loaders.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08


class IdxError(ValueError):
    """Not a well-formed unsigned-byte IDX file; the message names the file and the fault."""


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) of unsigned bytes into an ndarray."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4:
        raise IdxError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != IDX_UBYTE or not 1 <= ndim <= 4:
        raise IdxError(
            f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()}, "
            f"expected 0000 08 0{ndim if 1 <= ndim <= 4 else 'n'})"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IdxError(f"{path}: header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = int(np.prod(shape))
    if len(raw) - header_len != expected:
        raise IdxError(
            f"{path}: header declares shape {shape} ({expected} bytes) "
            f"but {len(raw) - header_len} bytes follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write `array` (values 0-255) as an IDX file, gzipped as path + '.gz' when asked."""
    header = struct.pack(">HBB", 0, IDX_UBYTE, array.ndim)
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path
