"""Image files that lie: headers that declare more than their data holds (test helpers)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

FORMATS = {  # lossless where the format allows, so a complete decode is exact
    "PNG": {},
    "JPEG": {"quality": 90},
    "GIF": {},
    "WEBP": {"lossless": True},
}


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **FORMATS.get(fmt, {}))
    return buffer.getvalue()


def sample(height: int = 40, width: int = 40, seed: int = 0) -> np.ndarray:
    """Noise with a bright square: no two rows alike, nothing a decoder could guess."""
    image = (np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    return image


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by nothing else."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


def png_with_short_stream(width: int, height: int, rows: int) -> bytes:
    """A complete, valid-looking grayscale PNG whose zlib stream holds only `rows` rows (each
    a filter byte and `width` pixels): the image data ends long before the declared height."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes([(17 * (r + 1)) % 256]) * width for r in range(rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def jpeg_ending_early(rows: int = 16, declared: int = 64, width: int = 40) -> bytes:
    """A well-formed JPEG (EOI marker and all) with data for `rows` rows whose frame header
    declares `declared`: libjpeg pads the rest with grey unless asked to be strict."""
    data = bytearray(encoded(sample(rows, width), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = struct.pack(">H", declared)
    return bytes(data)


def tiff_with_short_strips(rows: int = 10, declared: int = 40, width: int = 40) -> bytes:
    """An uncompressed TIFF whose ImageLength says `declared` rows, its strips hold `rows`."""
    data = bytearray(encoded(sample(rows, width), "TIFF"))
    for kind in (3, 4):  # ImageLength (tag 257) as SHORT or LONG
        entry = data.find(struct.pack("<HH", 257, kind))
        if entry >= 0:
            data[entry + 8 : entry + 10] = struct.pack("<H", declared)
            return bytes(data)
    raise AssertionError("no ImageLength tag")


def jpeg_with_stray_bytes(side: int = 28) -> bytes:
    """A complete JPEG with two stray bytes before a marker: libjpeg warns, decodes fine."""
    data = encoded(sample(side, side), "JPEG")
    dqt = data.index(b"\xff\xdb")
    return data[:dqt] + b"\x00\x00" + data[dqt:]
