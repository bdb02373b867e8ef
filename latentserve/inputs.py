"""Whatever a caller passes as images -> a list of encoded image files to upload.

Accepted, alone or in a list: a file path (str or Path), the bytes of an image file, a PIL
image, or a uint8 numpy array of one image (h, w) or several (n, h, w). Arrays and PIL images
are sent as PNG (lossless, and a 28x28 PNG is a fifth of the JSON pixel array).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | Image.Image | np.ndarray
Images: TypeAlias = ImageInput | Iterable[ImageInput]


def png(pixels: np.ndarray | Image.Image) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _array_files(array: np.ndarray) -> list[bytes]:
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (0-255 grayscale), not {array.dtype}")
    if array.ndim == 2:
        return [png(array)]
    if array.ndim == 3:
        return [png(image) for image in array]
    raise TypeError(f"an image array is (h, w) or (n, h, w), not {array.shape}")


def _one(item: Any) -> list[bytes]:
    if isinstance(item, bytes | bytearray | memoryview):
        return [bytes(item)]
    if isinstance(item, str | os.PathLike):
        return [Path(item).read_bytes()]
    if isinstance(item, Image.Image):
        return [png(item)]
    if isinstance(item, np.ndarray):
        return _array_files(item)
    raise TypeError(
        f"cannot send {type(item).__name__} as an image: pass paths, bytes, PIL images or "
        "uint8 numpy arrays"
    )


def image_files(images: Images) -> list[bytes]:
    """Every input as the bytes of one image file, in input order."""
    if isinstance(images, str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray):
        return _one(images)
    files = [file for item in images for file in _one(item)]
    if not files:
        raise ValueError("no images given")
    return files


def chunks(sizes: list[int], max_items: int, max_bytes: int) -> list[slice]:
    """Consecutive slices with at most max_items items and (roughly) max_bytes of body each;
    an item bigger than max_bytes goes alone (the service will say 413 for it)."""
    overhead = 200  # multipart headers per part, generously
    out, start, total = [], 0, 0
    for end, size in enumerate(sizes):
        if end > start and (end - start == max_items or total + size + overhead > max_bytes):
            out.append(slice(start, end))
            start, total = end, 0
        total += size + overhead
    out.append(slice(start, len(sizes)))
    return out
