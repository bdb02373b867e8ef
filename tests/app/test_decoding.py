"""Truncated image files are refused, complete ones are not; small PNGs decode as Pillow
decodes them (no server)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.contract.decoding import MARKERS, decode_small_png
from app.contract.errors import InvalidImage
from app.contract.images import ImageOptions, _decoded, decode_image, finish
from tests.app.corrupt import (
    FORMATS,
    encoded,
    jpeg_ending_early,
    jpeg_with_stray_bytes,
    png_with_short_stream,
    sample,
    tiff_with_short_strips,
)

OPTIONS = ImageOptions(max_pixels=4096 * 4096, resize=False, invert="false")
FITTED = ImageOptions(max_pixels=4096 * 4096)


def refused_as_truncated(data: bytes) -> str:
    with pytest.raises(InvalidImage, match="image is truncated") as info:
        decode_image(data, FITTED, 3)
    assert info.value.index == 3
    return info.value.message


def test_png_whose_stream_ends_before_its_declared_height() -> None:
    """The outside corpus' case: 1x1,000,000 declared, ten rows of data, then IEND."""
    message = refused_as_truncated(png_with_short_stream(1, 1_000_000, rows=10))
    assert "before row 10" in message


def test_png_whose_stream_ends_at_a_row_boundary_of_a_small_image() -> None:
    refused_as_truncated(png_with_short_stream(28, 28, rows=27))


def test_the_same_png_complete_decodes() -> None:
    decoded = decode_image(png_with_short_stream(28, 28, rows=28), OPTIONS, 0)
    assert decoded[27, 0] == (17 * 28) % 256


def test_jpeg_whose_data_ends_before_its_declared_height() -> None:
    refused_as_truncated(jpeg_ending_early())


def test_tiff_whose_strips_stop_short() -> None:
    refused_as_truncated(tiff_with_short_strips())


def test_a_jpeg_with_a_harmless_warning_still_decodes_as_pillow_decodes_it() -> None:
    data = jpeg_with_stray_bytes()
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    np.testing.assert_array_equal(decode_image(data, OPTIONS, 0), pillow)


def test_cmyk_jpeg_decodes_and_its_truncation_is_refused() -> None:
    cmyk = Image.fromarray(np.stack([sample()] * 4, axis=-1), mode="CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    assert decode_image(data, FITTED, 0).shape == (28, 28)
    sof = data.index(b"\xff\xc0")
    taller = data[: sof + 5] + (80).to_bytes(2, "big") + data[sof + 7 :]
    refused_as_truncated(taller)


@pytest.mark.parametrize("level", MARKERS)
def test_real_rows_of_the_marker_values_are_not_mistaken_for_missing_data(level: int) -> None:
    """Rows that really hold a marker value take the second decode, which clears them."""
    image = sample(28, 28)
    image[5:9] = level
    image[-1] = level  # the last row, where truncation would show
    for fmt in ("PNG", "GIF", "WEBP", "BMP", "TIFF"):
        np.testing.assert_array_equal(decode_image(encoded(image, fmt), OPTIONS, 0), image)


def test_a_gif_frame_smaller_than_its_screen_is_not_truncation() -> None:
    """GIF's first frame may cover part of the logical screen; the rest is background."""
    frame = Image.fromarray(sample(10, 28))
    canvas = Image.new("L", (28, 28))
    canvas.paste(frame, (0, 0))
    buffer = io.BytesIO()
    frame.save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    data[8:10] = (28).to_bytes(2, "little")  # logical screen 28 high; the frame stays 10
    decoded = decode_image(bytes(data), OPTIONS, 0)
    np.testing.assert_array_equal(decoded[:10], np.asarray(frame))


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_cut_of_a_valid_file_decodes_to_a_different_image(fmt: str) -> None:
    """Every prefix of a valid file is refused (422) or, when all pixel data survived the cut
    (a PNG missing only its IEND, say), decodes to exactly the complete image."""
    image = sample()
    data = encoded(image, fmt)
    complete = decode_image(data, FITTED, 0)
    silent = []
    for length in range(1, len(data)):
        try:
            decoded = decode_image(data[:length], FITTED, 0)
        except InvalidImage:
            continue
        if not np.array_equal(decoded, complete):
            silent.append(length)
    assert silent == []


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _kinds() -> dict[str, bytes]:
    """PNGs of each kind a client may send, with distinct, partly transparent pixels."""
    grey = Image.fromarray(sample(28, 28))
    rgba = np.stack([sample(28, 28, seed) for seed in (1, 2, 3, 4)], axis=-1)
    return {
        "grey": _png(grey),
        "grey, interlaced": _png(grey, interlace=1),
        "RGB": _png(Image.fromarray(rgba[..., :3])),
        "RGBA": _png(Image.fromarray(rgba)),
        "grey + alpha": _png(Image.fromarray(rgba[..., :2], mode="LA")),
        "palette": _png(Image.fromarray(rgba[..., :3]).quantize(16)),
        "16-bit grey": _png(Image.fromarray(sample(28, 28).astype(np.uint16) * 257)),
        "1-bit": _png(grey.convert("1")),
    }


FAST_KINDS = ("grey", "grey, interlaced", "RGB", "RGBA")


@pytest.mark.parametrize("kind", list(_kinds()))
def test_every_kind_of_png_decodes_as_pillow_decodes_it(kind: str) -> None:
    """libspng takes the common kinds, Pillow the rest; the pixels never depend on which."""
    data = _kinds()[kind]
    assert (decode_small_png(data, 4096 * 4096) is not None) == (kind in FAST_KINDS)
    np.testing.assert_array_equal(
        decode_image(data, OPTIONS, 0), finish(_decoded(data, OPTIONS, 0), OPTIONS, 0)
    )


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_a_png_with_any_bit_flipped_is_left_to_pillow(kind: str) -> None:
    """libspng is told to ignore chunk checksums; they are checked before it runs, so a
    damaged file gets Pillow's checks and messages, never libspng's guess."""
    data = _kinds()[kind]
    for position in range(len(data)):
        for bit in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[position] ^= bit
            assert decode_small_png(bytes(damaged), 4096 * 4096) is None, position


def test_a_png_with_an_orientation_is_turned_by_pillow() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = _png(Image.fromarray(sample(28, 28)), exif=exif.tobytes())
    assert decode_small_png(data, 4096 * 4096) is None
    np.testing.assert_array_equal(decode_image(data, OPTIONS, 0), np.rot90(sample(28, 28), -1))


def test_a_large_png_is_decoded_by_pillow_which_lets_go_of_the_gil() -> None:
    data = encoded(sample(300, 300), "PNG")
    assert decode_small_png(data, 4096 * 4096) is None
    assert decode_small_png(encoded(sample(256, 256), "PNG"), 4096 * 4096) is not None
    np.testing.assert_array_equal(_decoded(data, OPTIONS, 0), sample(300, 300))


def test_a_small_png_over_the_pixel_limit_gets_the_limits_message() -> None:
    with pytest.raises(InvalidImage, match="max_image_pixels"):
        decode_image(encoded(sample(), "PNG"), ImageOptions(max_pixels=100), 0)
