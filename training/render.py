"""The datasets' 28x28 images rendered as users' files look: photos of items, scans of writing.

A dataset image is light on dark (the item's or the ink's strength per pixel). A photo lays the
item, dark, on a light ground lit unevenly, somewhere in a frame of phone-photo proportions,
turned a little, with focus blur, sensor noise, a colour cast and JPEG compression; some are
stored sideways with an EXIF orientation tag, as phones do. A scan lays ink on paper of varying
tone, slightly skewed, with margins, noise, and PNG or JPEG. Every parameter is drawn per image
from a range named below; the ranges describe ordinary photos and scans, and are not tuned to
what the framing handles (the robustness benchmark reports each distortion alone, too).

Used by the framing-robustness benchmark (training/robustness.py) and by the small-data
benchmark's image folders.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

Span = tuple[float, float]
ORIENTATION_TAG = 0x0112
# EXIF orientation -> how the stored pixels are turned from the upright picture (Pillow's
# transpose), so that a viewer applying the tag shows it upright again.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
SIDEWAYS = (6, 8)  # what phones write for a picture taken in portrait / upside-down portrait
WARM_CAST = (1.0, 0.96, 0.88)  # indoor light on a white ground, per RGB channel


@dataclass(frozen=True)
class Look:
    """Ranges each rendered file draws its parameters from (uniformly)."""

    side: Span = (112, 112)
    """Longer side of the file, pixels."""
    aspects: tuple[float, ...] = (1.0,)
    """Width / height of the frame, one drawn per image."""
    fill: Span = (1.0, 1.0)
    """Item's longer side as a share of the frame's shorter side (1: no margin)."""
    ground: Span = (255, 255)
    """Tone of the ground (paper, table), 0-255."""
    light: Span = (0.0, 0.0)
    """Uneven light: the ground's tone falls by up to this share across the frame."""
    contrast: Span = (1.0, 1.0)
    """How dark the item's (or ink's) strongest pixel is against the ground: 1 black."""
    rotation: float = 0.0
    """The item is turned by up to this many degrees either way."""
    blur: Span = (0.0, 0.0)
    """Gaussian blur radius, in pixels of the file."""
    noise: Span = (0.0, 0.0)
    """Standard deviation of the sensor noise, in grey levels."""
    jpeg: Span | None = None
    """JPEG quality range; None: PNG."""
    jpeg_share: float = 1.0
    """Share of images written as JPEG when `jpeg` is set (the rest PNG)."""
    colour: bool = False
    """An RGB file with a warm cast, as a phone photo; else grayscale."""
    exif_share: float = 0.0
    """Share of images stored sideways with an orientation tag that turns them upright."""


CLEAN_UPSCALED = Look()
"""Dark on white, filling a 112 px frame, PNG: what every distortion below starts from."""
PHOTO = Look(
    side=(60, 400),
    aspects=(4 / 3, 3 / 4, 1.0),
    fill=(0.45, 0.85),
    ground=(185, 250),
    light=(0.05, 0.3),
    contrast=(0.6, 0.95),
    rotation=6.0,
    blur=(0.0, 1.2),
    noise=(2.0, 8.0),
    jpeg=(60, 95),
    colour=True,
)
PHOTO_EXIF = replace(PHOTO, exif_share=1 / 3)
SCAN = Look(
    side=(40, 200),
    aspects=(1.0, 0.8, 1.25),
    fill=(0.35, 0.75),
    ground=(200, 250),
    light=(0.0, 0.1),
    contrast=(0.5, 1.0),
    rotation=5.0,
    blur=(0.0, 0.8),
    noise=(2.0, 6.0),
    jpeg=(70, 95),
    jpeg_share=0.5,
)
FOLDER = Look(
    side=(40, 200),
    aspects=(1.0, 0.8, 1.25),
    fill=(0.5, 0.9),
    ground=(215, 255),
    light=(0.0, 0.1),
    contrast=(0.7, 1.0),
    rotation=3.0,
    blur=(0.0, 0.6),
    noise=(0.0, 4.0),
    jpeg=(75, 95),
    jpeg_share=0.5,
)
"""A user's folder of scans and product shots: varied sizes and margins, dark on light,
PNG and JPEG (the small-data benchmark's folders)."""
DISTORTIONS = {
    "size 60-400 px": replace(CLEAN_UPSCALED, side=PHOTO.side, aspects=PHOTO.aspects),
    "margins, off-centre": replace(CLEAN_UPSCALED, fill=PHOTO.fill, aspects=PHOTO.aspects),
    "ground tone 185-250": replace(CLEAN_UPSCALED, ground=PHOTO.ground),
    "item contrast 0.6-0.95": replace(CLEAN_UPSCALED, contrast=PHOTO.contrast),
    "gradient light": replace(CLEAN_UPSCALED, ground=(235, 235), light=PHOTO.light),
    "rotation ±6°": replace(CLEAN_UPSCALED, rotation=PHOTO.rotation),
    "noise σ 2-8": replace(CLEAN_UPSCALED, noise=PHOTO.noise),
    "blur 0-1.2 px": replace(CLEAN_UPSCALED, blur=PHOTO.blur),
    "JPEG q60-95": replace(CLEAN_UPSCALED, jpeg=PHOTO.jpeg),
    "colour cast": replace(CLEAN_UPSCALED, ground=(235, 235), colour=True),
    "EXIF, stored sideways": replace(CLEAN_UPSCALED, exif_share=1.0),
}
"""Each distortion of a photo alone, on top of CLEAN_UPSCALED."""
LOOKS = {"photo": PHOTO, "photo + EXIF": PHOTO_EXIF, "scan": SCAN}


def _draw(rng: np.random.Generator, span: Span) -> float:
    return float(rng.uniform(*span)) if span[0] != span[1] else float(span[0])


def _frame(rng: np.random.Generator, look: Look) -> tuple[int, int]:
    longer = round(_draw(rng, look.side))
    aspect = float(rng.choice(look.aspects))
    if aspect >= 1:
        return longer, max(1, round(longer / aspect))
    return max(1, round(longer * aspect)), longer


def _item_mask(item: np.ndarray, rng: np.random.Generator, look: Look, size: int) -> np.ndarray:
    """The item's strength (0-1) scaled so its frame is `size` px, then turned."""
    scaled = Image.fromarray(item).resize((size, size), Image.Resampling.BICUBIC)
    angle = _draw(rng, (-look.rotation, look.rotation))
    if angle:
        scaled = scaled.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    return np.asarray(scaled, np.float32) / 255.0


def _ground(rng: np.random.Generator, look: Look, width: int, height: int) -> np.ndarray:
    """The ground's tone per pixel: a base tone falling off along a random direction."""
    tone = _draw(rng, look.ground)
    fall = _draw(rng, look.light)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    along = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    return np.asarray(tone * (1 - fall * along), np.float32)


def render(item: np.ndarray, look: Look, rng: np.random.Generator) -> bytes:
    """One dataset image (uint8 28x28, light on dark) as an image file with `look`."""
    width, height = _frame(rng, look)
    size = max(4, round(_draw(rng, look.fill) * min(width, height)))
    mask = _item_mask(item, rng, look, size)
    mask = mask[:height, :width]  # a turned item may outgrow a frame it fills
    top = int(rng.integers(0, height - mask.shape[0] + 1))
    left = int(rng.integers(0, width - mask.shape[1] + 1))
    strength = np.zeros((height, width), np.float32)
    strength[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
    pixels = _ground(rng, look, width, height) * (1 - _draw(rng, look.contrast) * strength)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if (radius := _draw(rng, look.blur)) > 0:
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    values = np.asarray(picture, np.float32)
    if look.colour:
        values = values[..., None] * np.asarray(WARM_CAST, np.float32)
    values = values + rng.normal(0, _draw(rng, look.noise), values.shape).astype(np.float32)
    picture = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    orientation = int(rng.choice(SIDEWAYS)) if rng.random() < look.exif_share else 1
    return encode(picture, orientation, _quality(rng, look))


def _quality(rng: np.random.Generator, look: Look) -> int | None:
    if look.jpeg is None or rng.random() >= look.jpeg_share:
        return None
    return round(_draw(rng, look.jpeg))


def encode(picture: Image.Image, orientation: int = 1, quality: int | None = None) -> bytes:
    """`picture` (upright) as a PNG, or a JPEG of `quality`, stored turned as `orientation`
    says with the tag that turns it back (1: upright, no tag)."""
    exif = Image.Exif()
    if (turn := STORED_AS[orientation]) is not None:
        picture = picture.transpose(turn)
        exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    if quality is None:
        picture.save(buffer, format="PNG", exif=exif)
    else:
        picture.save(buffer, format="JPEG", quality=quality, exif=exif)
    return buffer.getvalue()
