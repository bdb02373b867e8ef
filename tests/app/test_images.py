"""The decoding path: formats, modes, polarity, fitting and limits (no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.errors import InvalidImage
from app.images import ImageOptions, decode_image, fit, from_array

OPTIONS = ImageOptions(max_pixels=4096 * 4096)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buffer.getvalue()


def stroke() -> np.ndarray:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[6:22, 12:16] = 255
    return image


def test_native_28x28_passes_through_unchanged() -> None:
    np.testing.assert_array_equal(
        decode_image(encode(Image.fromarray(stroke())), OPTIONS, 0), stroke()
    )


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "GIF", "WEBP"])
def test_lossless_formats_decode_to_the_same_pixels(fmt: str) -> None:
    decoded = decode_image(encode(Image.fromarray(stroke()), fmt), OPTIONS, 0)
    np.testing.assert_array_equal(decoded, stroke())


def test_jpeg_decodes_close() -> None:
    decoded = decode_image(encode(Image.fromarray(stroke()), "JPEG"), OPTIONS, 0)
    assert np.abs(decoded.astype(int) - stroke()).mean() < 10


def test_rgb_becomes_gray() -> None:
    rgb = np.stack([stroke()] * 3, axis=-1)
    np.testing.assert_array_equal(decode_image(encode(Image.fromarray(rgb)), OPTIONS, 0), stroke())


def test_alpha_is_composited_onto_black() -> None:
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white everywhere ...
    rgba[..., 3] = stroke()  # ... but only the stroke is opaque
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA")), OPTIONS, 0)
    np.testing.assert_array_equal(decoded, stroke())


def test_sixteen_bit_is_scaled_to_eight() -> None:
    wide = stroke().astype(np.uint16) * 257
    decoded = decode_image(encode(Image.fromarray(wide)), OPTIONS, 0)
    np.testing.assert_array_equal(decoded, stroke())


def test_auto_invert_recognises_dark_on_light() -> None:
    decoded = decode_image(encode(Image.fromarray(255 - stroke())), OPTIONS, 0)
    np.testing.assert_array_equal(decoded, stroke())
    forced = ImageOptions(max_pixels=OPTIONS.max_pixels, invert="false")
    np.testing.assert_array_equal(
        decode_image(encode(Image.fromarray(255 - stroke())), forced, 0), 255 - stroke()
    )
    always = ImageOptions(max_pixels=OPTIONS.max_pixels, invert="true")
    np.testing.assert_array_equal(from_array(stroke().tolist(), always, 0), 255 - stroke())


def test_fit_preserves_aspect_ratio_and_centres() -> None:
    wide = np.zeros((50, 200), dtype=np.uint8)
    wide[20:30, 20:180] = 255  # a 160x10 bar
    fitted = fit(wide, box=20, centre_of_mass=True)
    rows, cols = np.nonzero(fitted > 64)
    assert 18 <= cols.max() - cols.min() + 1 <= 21  # longer side scaled to the 20 px box
    assert rows.max() - rows.min() + 1 <= 3  # aspect ratio kept: 160:10 -> 20:~1
    assert abs(np.average(np.indices(fitted.shape)[0], weights=fitted) - 14) < 1.0


def test_fashion_framing_fills_the_frame() -> None:
    square = np.full((100, 100), 200, dtype=np.uint8)
    fitted = fit(square, box=28, centre_of_mass=False)
    assert (fitted > 150).all()


def test_resize_false_refuses_other_sizes() -> None:
    options = ImageOptions(max_pixels=OPTIONS.max_pixels, resize=False)
    with pytest.raises(InvalidImage, match="resize=false"):
        decode_image(encode(Image.new("L", (56, 56))), options, 2)


def test_pixel_limit_is_checked_from_the_header() -> None:
    options = ImageOptions(max_pixels=1000)
    with pytest.raises(InvalidImage, match="limit is 1000") as info:
        decode_image(encode(Image.new("L", (40, 40))), options, 4)
    assert info.value.index == 4


def test_first_frame_of_an_animation() -> None:
    frames = [Image.fromarray(stroke()), Image.fromarray(255 - stroke())]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(decode_image(buffer.getvalue(), OPTIONS, 0), stroke())


def test_exif_orientation_is_applied() -> None:
    """A phone photo stored sideways with an orientation tag arrives upright."""
    upright = np.zeros((28, 28), dtype=np.uint8)
    upright[2:8, :] = 255  # a bar along the top edge
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # bar on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    decoded = decode_image(buffer.getvalue(), OPTIONS, 0)
    np.testing.assert_array_equal(decoded, upright)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_give_a_typed_error_or_an_image(data: bytes) -> None:
    try:
        result = decode_image(data, OPTIONS, 0)
    except InvalidImage:
        return
    assert result.shape == (28, 28) and result.dtype == np.uint8


MODES = ["L", "RGB", "RGBA", "LA", "P", "I;16", "1", "CMYK"]


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 120),
    height=st.integers(1, 120),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "JPEG", "WEBP"]),
    seed=st.integers(0, 2**16),
)
def test_random_valid_images_decode_to_28x28(
    width: int, height: int, mode: str, fmt: str, seed: int
) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    try:
        data = encode(image, fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format; nothing to decode
    result = decode_image(data, OPTIONS, 0)
    assert result.shape == (28, 28) and result.dtype == np.uint8
