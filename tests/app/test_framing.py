"""Framing: the ground taken out, the item cropped and fitted as its dataset was (no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.contract.errors import InvalidImage
from app.contract.framing import BlankImage, estimate_ground, frame, reduced
from app.contract.images import ImageOptions, decode_image

OPTIONS = ImageOptions(max_pixels=4096 * 4096)


def item() -> np.ndarray:
    """A clean 28x28 item (a T), light on black, spanning the whole frame's height."""
    image = np.zeros((28, 28), np.uint8)
    image[:6, 4:24] = 255
    image[6:, 11:17] = 200
    return image


def photographed(
    ground: float, fall: float, noise: float, margin: int, seed: int = 0, side: int = 112
) -> np.ndarray:
    """`item()` dark on a light ground of `ground` falling by `fall` across the frame, in
    `margin` px of ground each side, with Gaussian noise (uint8, as a photo decodes)."""
    rng = np.random.default_rng(seed)
    strength = np.asarray(Image.fromarray(item()).resize((side, side), Image.Resampling.BICUBIC))
    full = side + 2 * margin
    canvas = np.zeros((full, full), np.float32)
    canvas[margin : margin + side, margin : margin + side] = strength / 255.0
    light = ground * (1 - fall * np.linspace(0, 1, full, dtype=np.float32))[None, :]
    pixels = light * (1 - 0.8 * canvas) + rng.normal(0, noise, canvas.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def away_from_item() -> np.ndarray:
    """Pixels at least two away from the item (resampling blurs its edge by one or so)."""
    near = np.pad(item() > 0, 2)
    grown = np.zeros((28, 28), bool)
    for dy in range(5):
        for dx in range(5):
            grown |= near[dy : dy + 28, dx : dx + 28]
    return ~grown


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def close_to_item(framed: np.ndarray) -> float:
    """Correlation of a framed image with the clean item."""
    return float(np.corrcoef(framed.ravel().astype(float), item().ravel().astype(float))[0, 1])


def test_a_clean_drawing_frames_as_before() -> None:
    """A ground that is already the datasets' (exactly black) is not estimated: the item is
    cropped and fitted, nothing else."""
    wide = np.zeros((50, 200), dtype=np.uint8)
    wide[20:30, 20:180] = 255  # a 160x10 bar
    fitted = frame(wide, box=20, centre_of_mass=True)
    rows, cols = np.nonzero(fitted > 64)
    assert 18 <= cols.max() - cols.min() + 1 <= 21  # longer side scaled to the 20 px box
    assert rows.max() - rows.min() + 1 <= 3  # aspect ratio kept: 160:10 -> 20:~1
    assert abs(np.average(np.indices(fitted.shape)[0], weights=fitted) - 14) < 1.0


def test_fashion_framing_fills_the_frame() -> None:
    square = np.zeros((120, 120), dtype=np.uint8)
    square[10:110, 10:110] = 200
    assert (frame(square, box=28, centre_of_mass=False) > 150).all()


@pytest.mark.parametrize(
    ("ground", "fall", "noise", "margin"),
    [
        (255, 0.0, 0.0, 0),  # the clean upscaled item
        (190, 0.0, 0.0, 0),  # grey paper
        (240, 0.3, 0.0, 20),  # light falling off across the frame
        (220, 0.1, 6.0, 40),  # sensor noise, wide margins
        (200, 0.25, 8.0, 60),  # all of it
    ],
)
def test_a_photo_frames_like_the_clean_item(
    ground: float, fall: float, noise: float, margin: int
) -> None:
    photo = photographed(ground, fall, noise, margin)
    framed = decode_image(png(photo), OPTIONS, 0)
    assert close_to_item(framed) > 0.95
    assert framed.max() == 255  # contrast stretched as in the datasets
    assert (framed[away_from_item()] < 16).mean() > 0.97  # the ground is black again


def test_the_ground_estimate_follows_gradient_light() -> None:
    inverted = 255 - photographed(230, 0.3, 3.0, 30)  # light item on a dark ground
    ground = estimate_ground(reduced(inverted))
    assert ground is not None
    expected = reduced(255 - photographed(230, 0.3, 0.0, 30))  # the same, without noise
    corners = np.zeros(expected.shape, bool)
    corners[:8, :8] = corners[-8:, -8:] = True
    assert np.abs(ground.surface - expected)[corners].mean() < 3
    assert 1.2 < ground.noise < 1.8  # 3 levels, halved by averaging 2x2 pixels into one


def test_specks_of_noise_do_not_widen_the_crop() -> None:
    photo = photographed(230, 0.0, 2.0, 40)
    photo[2, 2] = photo[-3, -3] = 0  # two dark specks (bright once inverted) in the corners
    assert close_to_item(decode_image(png(photo), OPTIONS, 0)) > 0.95


@pytest.mark.parametrize("tone", [0, 128, 255])
def test_a_blank_page_is_a_422_saying_so(tone: int) -> None:
    page = np.random.default_rng(0).normal(tone, 3, (300, 200)).clip(0, 255).astype(np.uint8)
    with pytest.raises(InvalidImage, match="stands out from its ground") as info:
        decode_image(png(page), OPTIONS, 5)
    assert info.value.index == 5
    with pytest.raises(BlankImage):
        frame(np.full((40, 40), tone, np.uint8), 28, False)


def test_a_28x28_image_is_taken_as_framed() -> None:
    """The datasets' own format passes through (polarity aside), blank or not."""
    assert (decode_image(png(np.zeros((28, 28), np.uint8)), OPTIONS, 0) == 0).all()


def test_an_item_touching_every_border_still_gets_an_answer() -> None:
    pixels = np.full((90, 90), 60, np.uint8)
    pixels[::3, :] = 200  # stripes from edge to edge: no ground anywhere
    assert decode_image(png(pixels), OPTIONS, 0).shape == (28, 28)


def test_a_one_pixel_line_survives() -> None:
    page = np.full((200, 200), 240, np.uint8)
    page[100, 30:170] = 20
    framed = decode_image(png(page), OPTIONS, 0)
    assert framed.max() == 255 and (framed > 100).sum() >= 20  # the line, scaled to the box


def test_transparent_cutouts_keep_their_item() -> None:
    """A cut-out product photo: a dark item on transparency (over a coloured RGB ground)."""
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[..., :3] = (0, 180, 0)  # the hidden ground is green
    rgba[20:60, 30:50] = (20, 20, 20, 255)  # a dark, opaque item
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    framed = decode_image(buffer.getvalue(), OPTIONS, 0)
    assert framed[14, 14] > 200 and framed[14, 0] == 0  # light item, black ground


@settings(max_examples=40, deadline=None)
@given(
    ground=st.integers(110, 255),
    fall=st.floats(0, 0.3),
    noise=st.floats(0, 6),
    margin=st.integers(0, 80),
    seed=st.integers(0, 1000),
)
def test_any_reasonable_photo_of_the_item_is_found(
    ground: int, fall: float, noise: float, margin: int, seed: int
) -> None:
    photo = photographed(ground, fall, noise, margin, seed, side=84)
    assert close_to_item(decode_image(png(photo), OPTIONS, 0)) > 0.9
