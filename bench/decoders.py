"""Is a maintained decoder measurably faster than Pillow for what the service decodes?

    .venv/bin/python bench/decoders.py

Installs the candidates (pinned, PyPI) into bench/out/decoders with `pip --target` the first
time, then times, best of 7, microseconds per image: the service's own decode path
(`app.contract.images.decode_image`: Pillow plus the truncation checks, EXIF orientation,
polarity and framing), Pillow alone (open + convert to grayscale), OpenCV's `imdecode` to grayscale,
pyspng (PNG) and simplejpeg (JPEG), on a Fashion-MNIST test image as a 28x28 PNG and JPEG
and on 1024x768 photo-sized PNG and JPEG uploads; and the memory each import adds.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "bench" / "out" / "decoders"
CANDIDATES = ["opencv-python-headless==5.0.0.93", "pyspng==0.1.4", "simplejpeg==1.9.0"]
REPEATS = 7
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def main() -> int:
    if not (TARGET / "cv2").exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        subprocess.run([*pip, "--target", str(TARGET), *CANDIDATES], check=True)
    sys.path.insert(0, str(TARGET))
    from app.contract.images import ImageOptions, decode_image
    from bench.micro import test_image

    image = test_image()
    photo = np.asarray(Image.fromarray(image).resize((1024, 768)))
    inputs = {
        "28x28 PNG": (encoded(image, "PNG"), 2000),
        "28x28 JPEG": (encoded(image, "JPEG"), 2000),
        "1024x768 PNG": (encoded(photo, "PNG"), 30),
        "1024x768 JPEG": (encoded(photo, "JPEG"), 30),
    }
    options = ImageOptions(max_pixels=4096 * 4096, fit_box=28)
    before = rss_mb()
    import cv2

    added = {"opencv": rss_mb() - before}
    before = rss_mb()
    import pyspng
    import simplejpeg

    added["pyspng + simplejpeg"] = rss_mb() - before

    def pillow(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("L"))

    def opencv(data: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)  # type: ignore[no-any-return]

    def specialised(data: bytes) -> np.ndarray:
        if data.startswith(b"\x89PNG"):
            return pyspng.load(data)  # type: ignore[no-any-return]
        return simplejpeg.decode_jpeg(data, colorspace="GRAY")  # type: ignore[no-any-return]

    decoders: dict[str, Callable[[bytes], object]] = {
        "service path (Pillow + checks)": lambda data: decode_image(data, options, 0),
        "Pillow alone": pillow,
        "OpenCV imdecode": opencv,
        "pyspng / simplejpeg": specialised,
    }
    print("| decoder | " + " | ".join(inputs) + " |")
    print("| --- |" + " --- |" * len(inputs))
    for name, decode in decoders.items():
        times = [best_us(partial(decode, data), n) for data, n in inputs.values()]
        print(f"| {name} | " + " | ".join(f"{t:.0f} µs" for t in times) + " |")
    print()
    print("RSS added by importing: " + ", ".join(f"{k} {v:.0f} MB" for k, v in added.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
