"""Turning uploads into the models' input: uint8 (28, 28), light strokes on a dark ground.

This and app.contract.decoding are the only places the service decodes images. Every failure is an
`InvalidImage` naming the image's index, so bad input is a 422, never a 500.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.contract.decoding import (
    JPEG_FORMATS,
    TruncatedImage,
    decode_jpeg,
    decode_small_png,
    load_complete,
)
from app.contract.errors import InvalidImage
from app.contract.framing import WORK_SIDE, BlankImage, frame, item_is_darker
from app.contract.repository import IMAGE_SIDE as SIDE
from app.contract.repository import InputSpec

BORDER = 2  # pixels of the outer ring used to tell the background's brightness
DARK_GROUND, LIGHT_GROUND = 64, 192  # ring means that settle polarity by the ground alone
Invert = Literal["auto", "true", "false"]
OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


@dataclass(frozen=True)
class ImageOptions:
    """How to fit an image; fit_box/centre_of_mass come from the model's manifest."""

    max_pixels: int
    resize: bool = True
    invert: Invert = "auto"
    fit_box: int = SIDE
    centre_of_mass: bool = False

    @classmethod
    def for_input(
        cls, spec: InputSpec, max_pixels: int, resize: bool = True, invert: Invert = "auto"
    ) -> ImageOptions:
        """How an upload becomes this version's input: the framing its manifest records."""
        return cls(max_pixels, resize, invert, spec.fit_box, spec.centre_of_mass)


def _to_gray(image: Image.Image) -> np.ndarray:
    """8-bit grayscale; transparency composited onto a contrasting ground; 16-bit and float
    scaled down."""
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
        return _composited(image.convert("LA"))
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def _composited(image: Image.Image) -> np.ndarray:
    """An image with transparency on a ground it stands out from: black under a light item,
    white under a dark one (a cut-out product photo), so neither disappears into its ground;
    polarity is decided afterwards, as for any image."""
    luma, alpha = (np.asarray(band, np.float32) for band in image.split())
    opacity = alpha / 255.0
    covered = float(opacity.sum())
    light_item = covered == 0 or float((luma * opacity).sum()) / covered >= 127.5
    ground = 0.0 if light_item else 255.0
    return np.asarray(np.rint(luma * opacity + ground * (1 - opacity)), np.uint8)


def _needs_inversion(gray: np.ndarray, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    # Mean of the outer BORDER-pixel ring, as whole sum minus inner sum: two reductions
    # instead of gathering four slices (a fifth of the decode time of a 28x28 PNG).
    inner = gray[BORDER:-BORDER, BORDER:-BORDER]
    ring_pixels = gray.size - inner.size
    ring_mean = (int(gray.sum(dtype=np.int64)) - int(inner.sum(dtype=np.int64))) / ring_pixels
    if ring_mean < DARK_GROUND:
        return False
    if ring_mean > LIGHT_GROUND:
        return True  # a light border: dark strokes on a light ground
    return item_is_darker(gray)  # a grey ground: the item says which way round


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
    try:
        return frame(gray, options.fit_box, options.centre_of_mass)
    except BlankImage as err:
        raise InvalidImage(str(err), index) from None


def decode_image(data: bytes, options: ImageOptions, index: int) -> np.ndarray:
    """Decode an image file (any format Pillow reads) into uint8 (28, 28)."""
    if not data:
        raise InvalidImage("empty image", index)
    try:
        gray = _small_png(data, options)
        if gray is None:
            gray = _decoded(data, options, index)
    except InvalidImage:
        raise
    except TruncatedImage as err:
        raise InvalidImage(f"image is truncated: {err}", index) from None
    except UnidentifiedImageError:
        raise InvalidImage("cannot decode image: no format the service reads", index) from None
    except Exception as err:  # Pillow raises many types for corrupt files; all mean 422.
        if "truncated" in str(err):  # Pillow's own word for a file that stops mid-image
            raise InvalidImage(f"image is truncated: {_plain(err)}", index) from None
        raise InvalidImage(f"cannot decode image: {_plain(err)}", index) from None
    return finish(gray, options, index)


def _small_png(data: bytes, options: ImageOptions) -> np.ndarray | None:
    """Grey pixels of a PNG app.contract.decoding decodes without Pillow, else None."""
    pixels = decode_small_png(data, options.max_pixels)
    if pixels is None or pixels.ndim == 2:  # 8-bit grey: already what _to_gray makes
        return pixels
    return _to_gray(Image.fromarray(pixels))  # RGB, RGBA: Pillow's own luma and compositing


def _decoded(data: bytes, options: ImageOptions, index: int) -> np.ndarray:
    """Any image Pillow opens, its size checked before its pixels are decoded."""
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
        # A picture to be framed is reduced to at most WORK_SIDE anyway (app.contract.framing).
        min_side = WORK_SIDE if options.resize else 0
        jpeg = image.format in JPEG_FORMATS
        gray = decode_jpeg(data, image, min_side) if jpeg else None
        if gray is None:
            image.seek(0)  # first frame of animations
            load_complete(image, data)
            # In place: an image without an orientation tag (nearly all) is not copied.
            ImageOps.exif_transpose(image, in_place=True)
            gray = _to_gray(image)
    return gray


def _plain(err: Exception) -> str:
    """A decoder's message without the object reprs some of them carry (`<_io.BytesIO object
    at 0x7f...>`): they say nothing to a client, and differ from run to run."""
    return OBJECT_REPR.sub("the file", str(err)) or type(err).__name__


def from_array(values: list[list[float]], options: ImageOptions, index: int) -> np.ndarray:
    """A JSON instance: rows of 0-255 numbers, already validated by the request schema."""
    gray = np.rint(np.asarray(values, dtype=np.float64)).astype(np.uint8)
    return finish(gray, options, index)
