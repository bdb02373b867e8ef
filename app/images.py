"""Turning uploads into the models' input: uint8 (28, 28), light strokes on a dark ground.

This and app.decoding are the only places the service decodes images. Every failure is an
`InvalidImage` naming the image's index, so bad input is a 422, never a 500.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from app.decoding import JPEG_FORMATS, TruncatedImage, decode_jpeg, load_complete
from app.errors import InvalidImage
from app.repository import IMAGE_SIDE as SIDE

BORDER = 2  # pixels of the outer ring used to tell the background's brightness
FOREGROUND_THRESHOLD = 32  # pixel value above which a pixel counts as stroke when cropping
Invert = Literal["auto", "true", "false"]


@dataclass(frozen=True)
class ImageOptions:
    """How to fit an image; fit_box/centre_of_mass come from the model's manifest."""

    max_pixels: int
    resize: bool = True
    invert: Invert = "auto"
    fit_box: int = SIDE
    centre_of_mass: bool = False


def _to_gray(image: Image.Image) -> np.ndarray:
    """8-bit grayscale; transparency composited onto black; 16-bit and float scaled down."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if np.nanmax(values, initial=0) <= 1.0 else 1.0
        return np.nan_to_num(np.clip(values * scale, 0, 255)).astype(np.uint8)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def _needs_inversion(gray: np.ndarray, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    # Mean of the outer BORDER-pixel ring, as whole sum minus inner sum: two reductions
    # instead of gathering four slices (a fifth of the decode time of a 28x28 PNG).
    inner = gray[BORDER:-BORDER, BORDER:-BORDER]
    ring_pixels = gray.size - inner.size
    ring_sum = int(gray.sum(dtype=np.int64)) - int(inner.sum(dtype=np.int64))
    return ring_sum > 127.5 * ring_pixels  # a light border: dark strokes on a light ground


def fit(gray: np.ndarray, box: int, centre_of_mass: bool) -> np.ndarray:
    """Crop to the strokes, scale the longer side to `box`, place in a 28x28 black canvas.

    MNIST digits were scaled into a 20x20 box and centred by centre of mass; Fashion-MNIST
    items fill the 28x28 frame and are centred by their bounding box. The manifest says which.
    """
    mask = gray > FOREGROUND_THRESHOLD
    if not mask.any():
        mask = gray > 0
    if mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        gray = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = gray.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scaled = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.LANCZOS))
    canvas = np.zeros((SIDE, SIDE), dtype=np.uint8)
    top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
    if centre_of_mass and scaled.any():
        ys, xs = np.indices(scaled.shape)
        total = scaled.sum(dtype=np.float64)
        cy, cx = (ys * scaled).sum() / total, (xs * scaled).sum() / total
        top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - size[1]))
        left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - size[0]))
    canvas[top : top + size[1], left : left + size[0]] = scaled
    return canvas


def finish(gray: np.ndarray, options: ImageOptions, index: int) -> np.ndarray:
    """Shared tail of both input kinds: polarity, then size."""
    if _needs_inversion(gray, options.invert):
        gray = 255 - gray
    if gray.shape == (SIDE, SIDE):
        return gray
    if not options.resize:
        raise InvalidImage(
            f"image is {gray.shape[1]}x{gray.shape[0]}, not {SIDE}x{SIDE}, and resize=false",
            index,
        )
    return fit(gray, options.fit_box, options.centre_of_mass)


def decode_image(data: bytes, options: ImageOptions, index: int) -> np.ndarray:
    """Decode an image file (any format Pillow reads) into uint8 (28, 28)."""
    if not data:
        raise InvalidImage("empty image", index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            width, height = image.size
            if width * height > options.max_pixels:
                raise InvalidImage(
                    f"image declares {width}x{height} = {width * height} pixels; the limit is "
                    f"{options.max_pixels} (max_image_pixels)",
                    index,
                )
            if width == 0 or height == 0:
                raise InvalidImage(f"image has no pixels ({width}x{height})", index)
            gray = decode_jpeg(data, image) if image.format in JPEG_FORMATS else None
            if gray is None:
                image.seek(0)  # first frame of animations
                load_complete(image, data)
                # In place: an image without an orientation tag (nearly all) is not copied.
                ImageOps.exif_transpose(image, in_place=True)
                gray = _to_gray(image)
    except InvalidImage:
        raise
    except TruncatedImage as err:
        raise InvalidImage(f"image is truncated: {err}", index) from None
    except Exception as err:  # Pillow raises many types for corrupt files; all mean 422.
        if "truncated" in str(err):  # Pillow's own word for a file that stops mid-image
            raise InvalidImage(f"image is truncated: {err}", index) from None
        raise InvalidImage(f"cannot decode image: {err}", index) from None
    return finish(gray, options, index)


def from_array(values: list[list[float]], options: ImageOptions, index: int) -> np.ndarray:
    """A JSON instance: rows of 0-255 numbers, already validated by the request schema."""
    gray = np.rint(np.asarray(values, dtype=np.float64)).astype(np.uint8)
    return finish(gray, options, index)
