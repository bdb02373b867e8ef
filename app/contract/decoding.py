"""Image files -> pixels, refusing files whose data ends before the image they declare.

Pillow (and the libjpeg under it) fill what a file does not contain instead of saying so:
a PNG whose zlib stream ends early leaves the rest of the image black, a GIF whose LZW data
ends early leaves it at the background, and libjpeg pads a JPEG that ends early with grey. A
truncated upload would then get a confident prediction for a picture nobody sent. So:

- JPEG is decoded by libjpeg-turbo through simplejpeg in strict mode, where "premature end of
  data" is an error; it is also about 5x faster than Pillow for a 28x28 JPEG and 1.3x for a
  1024x768 one (docs/benchmarks.md). Other libjpeg warnings do not reject an image: such files
  (and CMYK JPEGs, which it cannot turn into luma) are decoded by Pillow, as before.
- A small PNG of the common kinds (8-bit grey, RGB or RGBA, intact) is decoded by libspng
  through pyspng: a 28x28 PNG in a fifth of Pillow's time (bench/micro.py, docs/benchmarks.md),
  which was nearly all Python around a 9 us inflate. libspng refuses a stream that ends early
  by itself; chunk checksums, which it is told to ignore, are checked here first, and any PNG
  it is not sure to decode exactly as Pillow does goes to Pillow instead.
- Every other format is decoded by Pillow into an image pre-filled with a marker value inside
  the decoder's tiles. A row still entirely made of the marker after decoding was either never
  written or happens to have that value; a second decode with another marker tells which.
  Real images almost never need the second decode (the markers are uncommon mid-grey levels).
  Tiles that do not cover the whole image (a TIFF whose strips stop short) are truncation too,
  except in a GIF, whose first frame may legitimately cover part of its screen.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from functools import cache

import numpy as np
import pyspng
import simplejpeg
from PIL import Image, ImageOps

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a phone's multi-picture JPEG; its first image is a JPEG
JPEG_TRUNCATED = ("premature end",)
MARKERS = (92, 163)  # two uncommon levels; for 16-bit and float modes scaled below
CANVAS_FORMATS = ("GIF",)  # a GIF's first frame may cover only part of its logical screen
Box = tuple[int, int, int, int]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST_PNG_PIXELS = 256 * 256
"""Largest PNG decoded by libspng: pyspng holds the GIL while it decodes, Pillow does not, and
only small images gain from skipping Pillow's fixed cost."""
FAST_PNG_COLOURS = (0, 2, 6)  # grey, RGB, RGBA at 8 bits; the rest (palette, 16-bit,
# grey+alpha, which this libspng cannot output as such) go to Pillow
PILLOW_PNG_CHUNKS = (b"eXIf", b"acTL")  # an orientation to apply; an animation's frames


class TruncatedImage(ValueError):
    """The file ends before the image it declares is complete."""


@cache
def _marker(mode: str, which: int) -> float | tuple[int, ...]:
    level = MARKERS[which]
    if mode == "1":
        return which
    if mode == "F":
        return level + 0.25
    if mode.startswith("I"):
        return level * 0x0101 if mode.startswith("I;16") else level * 0x01010101
    bands = Image.getmodebands(mode)
    return (level,) * bands if bands > 1 else level


def _load_prefilled(image: Image.Image, marker: float | tuple[int, ...]) -> list[Box]:
    """Load `image`'s pixels over a canvas whose decoder tiles hold `marker`; the tiles."""
    boxes: list[Box] = [tuple(tile.extents) for tile in getattr(image, "tile", [])]  # type: ignore[misc]
    prepare = image.load_prepare  # type: ignore[attr-defined]

    def prepare_with_marker() -> None:
        prepare()  # the plugin's own canvas (e.g. a GIF's background), then the marker
        for box in boxes:
            image.im.paste(marker, box)

    image.load_prepare = prepare_with_marker  # type: ignore[attr-defined]
    image.load()
    return boxes


def _too_few_markers(image: Image.Image, boxes: Sequence[Box], level: int) -> bool:
    """Cheap first test: with 8 bits per band, a row of markers needs at least a tile's width
    of marker values in every band's histogram (2.3 us for a 28x28 PNG, against 6.3 us for
    the numpy row test that follows when it fails)."""
    if Image.getmodetype(image.mode) != "L" or image.mode == "1":
        return False  # 16-bit, 32-bit and 1-bit modes: no 256-bin histogram of the marker
    counts = image.im.histogram()
    narrowest = min(x1 - x0 for x0, _, x1, _ in boxes)
    return any(counts[band * 256 + level] < narrowest for band in range(len(counts) // 256))


def _marker_rows(image: Image.Image, boxes: Sequence[Box], marker: object) -> list[np.ndarray]:
    """Per tile, which of its rows are entirely `marker`."""
    pixels = np.asarray(image)
    rows = []
    for x0, y0, x1, y1 in boxes:
        region = pixels[y0:y1, x0:x1] == np.asarray(marker)
        rows.append(region.reshape(y1 - y0, -1).all(axis=1))
    return rows


def load_complete(image: Image.Image, data: bytes) -> Image.Image:
    """`image` (opened from `data`, header read) with its pixels loaded; TruncatedImage when
    the decoder stopped before filling them."""
    first = _marker(image.mode, 0)
    boxes = _load_prefilled(image, first)
    if not boxes:
        return image
    covered = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    if covered < image.width * image.height and image.format not in CANVAS_FORMATS:
        raise TruncatedImage(
            f"its data covers {covered} of the {image.width}x{image.height} pixels it declares"
        )
    if _too_few_markers(image, boxes, MARKERS[0]):
        return image
    suspects = _marker_rows(image, boxes, first)
    if not any(rows.any() for rows in suspects):
        return image
    again = Image.open(io.BytesIO(data))
    second = _marker(again.mode, 1)
    _load_prefilled(again, second)
    for box, rows, rows_again in zip(
        boxes, suspects, _marker_rows(again, boxes, second), strict=True
    ):
        unwritten = np.flatnonzero(rows & rows_again)
        if unwritten.size:
            raise TruncatedImage(
                f"its data ends before row {box[1] + int(unwritten[0])} of the "
                f"{image.width}x{image.height} it declares"
            )
    return image


def _intact_chunks(data: bytes) -> bool:
    """Every chunk whole, its CRC right, up to IEND, and none that Pillow must handle."""
    view, offset, end = memoryview(data), len(PNG_SIGNATURE), len(data)
    while offset + 12 <= end:
        (length,) = struct.unpack_from(">I", data, offset)
        stop = offset + 8 + length
        kind = data[offset + 4 : offset + 8]
        if stop + 4 > end or kind in PILLOW_PNG_CHUNKS:
            return False
        (crc,) = struct.unpack_from(">I", data, stop)
        if zlib.crc32(view[offset + 4 : stop]) != crc:
            return False
        if kind == b"IEND":
            return True
        offset = stop + 4
    return False


def decode_small_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """A small, intact PNG of a common kind decoded by libspng: uint8 (h, w) grey, (h, w, 3)
    RGB or (h, w, 4) RGBA. None to decode it with Pillow (every other PNG, and any error:
    Pillow's messages and checks are the reference)."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if depth != 8 or colour not in FAST_PNG_COLOURS:
        return None
    if not 0 < width * height <= min(FAST_PNG_PIXELS, max_pixels) or not _intact_chunks(data):
        return None
    try:
        pixels: np.ndarray = pyspng.load(data)
    except RuntimeError:  # e.g. its data ends early: Pillow says how
        return None
    return pixels


def _strict_jpeg(data: bytes, colorspace: str, **scale: int) -> np.ndarray | None:
    """libjpeg-turbo's decode; None when only a warning other than truncation stopped it."""
    try:
        decoded: np.ndarray = simplejpeg.decode_jpeg(
            data, colorspace=colorspace, strict=True, **scale
        )
    except ValueError as err:
        if any(sign in str(err).lower() for sign in JPEG_TRUNCATED):
            raise TruncatedImage(str(err)) from None
        return None
    return decoded


def decode_jpeg(data: bytes, header: Image.Image, min_side: int = 0) -> np.ndarray | None:
    """uint8 (h, w) luma of a JPEG, EXIF orientation applied; TruncatedImage if it ends early.

    With `min_side`, a large JPEG is decoded scaled down by libjpeg (1/2 to 1/8, its DCT does
    it nearly for free) as far as its longer side stays at least `min_side`: a 12-megapixel
    photo framed into 28x28 needs no 12 million pixels. None when Pillow should decode it
    after all: a CMYK JPEG (libjpeg-turbo makes no luma from CMYK; checked whole first), or
    one whose libjpeg warning is not about truncation.
    """
    if header.mode == "CMYK":
        _strict_jpeg(data, "CMYK")
        return None
    width, height = header.size
    scale = {}
    if min_side and max(width, height) >= 2 * min_side:
        scale = {"min_width": min_side} if width >= height else {"min_height": min_side}
    decoded = _strict_jpeg(data, "GRAY", **scale)
    if decoded is None:
        return None
    gray = decoded[:, :, 0]
    if "exif" not in header.info:
        return gray
    oriented = Image.fromarray(gray)
    oriented.info["exif"] = header.info["exif"]
    ImageOps.exif_transpose(oriented, in_place=True)
    return np.asarray(oriented)
