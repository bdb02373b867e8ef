"""Framing: a decoded picture (light item on a dark ground) -> the model's 28x28 input.

Photos and scans do not have the datasets' ground: it is grey, lit unevenly, noisy, and the
item sits somewhere in wide margins. So, before the item is cropped and fitted into the frame
the way its dataset was framed:

1. the picture is reduced to at most WORK_SIDE pixels (box averaging: it also averages noise);
2. the ground is estimated as a smooth surface (a quadratic in x and y, robustly fitted to the
   pixels that are not item, starting from the border) and subtracted, which takes out a grey
   paper tone and gradient light alike;
3. the noise level is measured on the ground that is left (its median absolute deviation), and
   the item is what stands out of it (its crop ignores lone specks of noise);
4. after fitting, what is left of the noise is cut (a soft threshold at the noise level the
   fit's averaging leaves) and the contrast stretched so that the strongest pixel is 255, as in
   the datasets (every MNIST and Fashion-MNIST image has a 254 or 255).

A picture whose border is the datasets' own ground (exactly black after polarity: a drawing, a
rendered image) skips 2-4: nothing is estimated, so clean inputs frame as they always did.
Nothing stands out at all (a blank page, a uniform photo): `BlankImage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.contract.repository import IMAGE_SIDE as SIDE

WORK_SIDE = 160  # pixels; an item 35% of a 4:3 frame still spans 40 of them
BAND = 0.08  # share of each side the first ground estimate comes from
GROUND_PASSES = 4
GROUND_SIGMAS = 2.5  # a pixel this far above the ground's surface is no longer ground
SAMPLES = 2048  # pixels the ground surface is fitted on (a grid over the picture)
ITEM_SIGMAS = 4.0  # an item pixel stands this many noise deviations above the ground
ITEM_SHARE = 0.12  # ... and above this share of the item's strongest pixels
NOISE_CUT = 2.0  # noise deviations cut from the fitted item (soft threshold)
MIN_NOISE = 1.0  # grey levels: the noise of an 8-bit picture is never below its rounding
MIN_CONTRAST = 48  # grey levels between a picture's darkest and lightest 1%: less is blank
CLEAN_THRESHOLD = 32  # a clean picture's crop: what counts as stroke (as before)
MAD_TO_SIGMA = 1.4826
RIDGE = 1e-4


BLANK = "nothing in the image stands out from its ground (a blank page, a uniform picture)"


class BlankImage(ValueError):
    """Nothing in the picture stands out from its ground."""


@dataclass(frozen=True)
class Ground:
    """The ground's surface (float32, the working picture's shape) and its noise (levels)."""

    surface: np.ndarray | float
    noise: float


def reduced(gray: np.ndarray) -> np.ndarray:
    """float32, longer side at most WORK_SIDE (integer box reduction, so no ringing)."""
    factor = -(-max(gray.shape) // WORK_SIDE)
    if factor <= 1:
        return gray.astype(np.float32)
    return np.asarray(Image.fromarray(gray).reduce(factor), np.float32)


def _band(shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    rows, cols = max(1, round(height * BAND)), max(1, round(width * BAND))
    band = np.zeros(shape, bool)
    band[:rows], band[-rows:], band[:, :cols], band[:, -cols:] = True, True, True, True
    return band


def _design(shape: tuple[int, int], step: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Quadratic terms (1, x, y, x², xy, y²) of a grid of the picture's pixels, in [-1, 1]."""
    height, width = shape
    grid = (slice(0, height, step), slice(0, width, step))
    ys, xs = np.mgrid[grid]
    x = xs.ravel() / max(width - 1, 1) * 2 - 1
    y = ys.ravel() / max(height - 1, 1) * 2 - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1).astype(np.float32), grid


def _surface(c: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The quadratic with coefficients `c` over every pixel (broadcast, no design matrix)."""
    height, width = shape
    x = (np.arange(width, dtype=np.float32) / max(width - 1, 1) * 2 - 1)[None, :]
    y = (np.arange(height, dtype=np.float32) / max(height - 1, 1) * 2 - 1)[:, None]
    return np.asarray(c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y)


def _least_squares(terms: np.ndarray, values: np.ndarray) -> np.ndarray:
    """By the normal equations: a 6x6 solve (numpy's lstsq, an SVD, took 0.7 ms here)."""
    gram = terms.T @ terms
    # A little ridge keeps a picture one pixel high (a constant y) solvable.
    gram += np.eye(len(gram), dtype=gram.dtype) * (RIDGE * float(np.trace(gram)) + RIDGE)
    return np.linalg.solve(gram, terms.T @ values)


def item_is_darker(gray: np.ndarray) -> bool:
    """On a grey ground, whether the item is darker than the ground (then the picture is
    inverted): what differs from the border's tone is mostly darker than it."""
    work = reduced(gray)
    deviation = work - float(np.median(work[_band(work.shape)]))
    return float(-deviation[deviation < 0].sum()) > float(deviation[deviation > 0].sum())


def estimate_ground(work: np.ndarray) -> Ground | None:
    """The ground under the picture; None when it is already the datasets' (exactly 0)."""
    band = work[_band(work.shape)]
    if np.count_nonzero(band) <= band.size // 4:  # three quarters of the border exactly black
        return None
    step = max(1, int(np.sqrt(work.size / SAMPLES)))
    terms, grid = _design(work.shape, step)
    values = work[grid].ravel()
    ground = _band(work.shape)[grid].ravel()
    # The ground is the picture's lower envelope: an item is brighter, never darker. So the
    # first guess is the border's darker half, and the noise is measured below the surface.
    ground &= values <= np.median(values[ground])
    noise = MIN_NOISE
    coefficients = np.zeros(terms.shape[1], np.float32)
    for _ in range(GROUND_PASSES):
        if ground.sum() < terms.shape[1] * 2:
            break
        coefficients = _least_squares(terms[ground], values[ground])
        residual = values - terms @ coefficients
        below = residual[ground & (residual <= 0)]
        noise = max(MAD_TO_SIGMA * float(np.median(-below)) if below.size else 0, MIN_NOISE)
        ground = residual < GROUND_SIGMAS * noise  # all that is not item, inside too
    return Ground(_surface(coefficients, work.shape), noise)


def item_box(item: np.ndarray, noise: float) -> tuple[slice, slice]:
    """Rows and columns holding the item: pixels well above the noise and above a share of the
    item's strength, with at least two such neighbours (a lone speck of noise is no item)."""
    strong = float(np.percentile(item, 99.5))
    mask = item > max(ITEM_SIGMAS * noise, ITEM_SHARE * strong)
    padded = np.pad(mask, 1).astype(np.uint8)
    neighbours = sum(
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    mask &= neighbours >= 3  # itself and two others
    if not mask.any():
        raise BlankImage(BLANK)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def clean_box(gray: np.ndarray) -> tuple[slice, slice]:
    """A clean picture's crop: its strokes (any pixel that is not black when there are none)."""
    mask = gray > CLEAN_THRESHOLD
    if not mask.any():
        mask = gray > 0
    if not mask.any():
        raise BlankImage(BLANK)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def place(item: np.ndarray, box: int, centre_of_mass: bool) -> np.ndarray:
    """Scale the cropped item's longer side to `box`, place it in a 28x28 black canvas
    (centred by bounding box, or by centre of mass as MNIST's digits were); float32."""
    height, width = item.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(np.asarray(item, np.float32), mode="F")
    scaled = np.maximum(np.asarray(picture.resize(size, Image.Resampling.LANCZOS)), 0)
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
    if centre_of_mass and scaled.any():
        ys, xs = np.indices(scaled.shape)
        total = scaled.sum(dtype=np.float64)
        cy, cx = (ys * scaled).sum() / total, (xs * scaled).sum() / total
        top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - size[1]))
        left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - size[0]))
    canvas[top : top + size[1], left : left + size[0]] = scaled
    return canvas


def frame(gray: np.ndarray, box: int, centre_of_mass: bool) -> np.ndarray:
    """uint8 (h, w), light item on a dark ground -> uint8 (28, 28) framed as the dataset."""
    work = reduced(gray)
    ground = estimate_ground(work)
    if ground is None:
        crop = work[clean_box(work)]
        return _to_uint8(place(crop, box, centre_of_mass))
    item = np.maximum(work - ground.surface, 0)
    try:
        return _fitted(item[item_box(item, ground.noise)], ground.noise, box, centre_of_mass)
    except BlankImage:
        # No ground to be seen (a close-up: the item fills the picture to every edge): the
        # whole picture is the item, unless it has no more contrast than a blank page.
        low, high = np.percentile(work, [1, 99])
        if high - low < MIN_CONTRAST:
            raise
        return _fitted(np.maximum(work - low, 0), 0.0, box, centre_of_mass)


def _fitted(crop: np.ndarray, noise: float, box: int, centre_of_mass: bool) -> np.ndarray:
    """The cropped item fitted, what is left of the noise cut, stretched so its peak is 255."""
    placed = place(crop, box, centre_of_mass)
    # The fit averaged about (crop side / box)^2 pixels into each: the noise left is smaller.
    left_over = noise * box / max(crop.shape)
    placed = np.maximum(placed - NOISE_CUT * left_over, 0)
    strongest = float(placed.max())
    if strongest <= 0:
        raise BlankImage(BLANK)
    return _to_uint8(placed * (255.0 / strongest))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(np.rint(values), 0, 255), np.uint8)
