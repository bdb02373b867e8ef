"""The decoding path: formats, modes, polarity, fitting and limits (no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.contract.errors import InvalidImage
from app.contract.images import ImageOptions, decode_image, from_array

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


# EXIF orientation -> how the stored pixels are turned from the upright picture, so that a
# viewer applying the tag shows it upright (the inverse of what the tag asks a viewer to do).
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


def upright_l() -> np.ndarray:
    """An asymmetric 28x28 shape (an L): every one of the 8 orientations looks different."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 6:11] = 255
    image[19:24, 6:20] = 255
    return image


def stored_with_tag(orientation: int, fmt: str, mode: str = "L") -> bytes:
    stored = Image.fromarray(upright_l())
    if (turn := STORED_AS[orientation]) is not None:
        stored = stored.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    extra = {"quality": 100} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    stored.convert(mode).save(buffer, format=fmt, exif=exif, **extra)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "L"),  # the fast path (libjpeg-turbo through simplejpeg)
        ("JPEG", "CMYK"),  # Pillow's JPEG path (libjpeg-turbo makes no luma from CMYK)
        ("PNG", "L"),  # eXIf chunk
        ("WEBP", "RGB"),
        ("TIFF", "L"),
    ],
)
def test_every_exif_orientation_arrives_upright(orientation: int, fmt: str, mode: str) -> None:
    """A phone stores a picture turned or mirrored, with the tag that turns it back."""
    decoded = decode_image(stored_with_tag(orientation, fmt, mode), OPTIONS, 0)
    if mode == "CMYK":  # Pillow reads Adobe CMYK JPEGs inverted: only the shape must match
        decoded = np.where(decoded > 127, 255, 0).astype(np.uint8)
        decoded = decoded if decoded[12, 8] else 255 - decoded
    tolerance = 24 if fmt == "JPEG" else 0
    assert np.abs(decoded.astype(int) - upright_l()).mean() <= tolerance / 8
    assert np.abs(decoded.astype(int) - upright_l()).max() <= max(tolerance * 8, 1)


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
    try:
        result = decode_image(data, OPTIONS, 0)
    except InvalidImage as err:  # uniform noise: no item stands out of it
        message = err.message
    else:
        assert result.shape == (28, 28) and result.dtype == np.uint8
        return
    assert "stands out from its ground" in message
