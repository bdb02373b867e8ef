"""In-process timings of the request path's per-image work (no HTTP, no model).

    .venv/bin/python bench/micro.py                          # this checkout
    PYTHONPATH=/tmp/before .venv/bin/python bench/micro.py   # another checkout, same venv

Best of 7 repeats, microseconds per call: decoding a Fashion-MNIST test image sent as a 28x28
PNG and as a JPEG, a 1024x768 JPEG photo-sized upload, parsing one JSON pixel-array
instance and turning it into pixels, and the shipped `fashion-mnist`'s ood score for a batch
of 32 latents (the numpy part of every `/classify` batch). Steadier than wrk on a shared
machine, so it is what before/after comparisons of these pieces quote (docs/benchmarks.md).
"""

from __future__ import annotations

import io
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from app.contract.images import ImageOptions, decode_image, from_array
from app.contract.ood import OodScorer
from app.contract.repository import latest_version
from app.pipeline import uploads

REPEATS, NUMBER = 7, 2000
ROOT = Path(__file__).resolve().parents[1]
OOD_BATCH = 32


def best_us(fn: Callable[[], object], number: int = NUMBER) -> float:
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": 90} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_image() -> np.ndarray:
    try:
        from training.datasets import load_dataset

        return load_dataset("fashion-mnist").x_test[0]
    except Exception:  # no dataset installed: a fixed stroke
        image = np.zeros((28, 28), dtype=np.uint8)
        image[6:22, 12:16] = 255
        return image


def parse_json(body: bytes) -> list:  # type: ignore[type-arg]
    if hasattr(uploads, "json_instances"):
        return uploads.json_instances(body, 256)  # type: ignore[no-any-return]
    return uploads._json_instances(body)  # type: ignore[attr-defined,no-any-return]  # older


def ood_batch() -> Callable[[], object] | None:
    """The shipped fashion-mnist's ood score on OOD_BATCH latents, or None without one."""
    path, manifest = latest_version(ROOT / "models", "fashion-mnist")
    if manifest.ood is None:
        return None
    scorer = OodScorer.load(path, manifest.ood)
    threadpool_limits(limits=1, user_api="blas")  # as the service's default inference_threads
    latents = np.random.default_rng(0).standard_normal((OOD_BATCH, manifest.latent_dim))
    latents = latents.astype(np.float32)
    return lambda: scorer.score(latents)


def main() -> int:
    image = test_image()
    options = ImageOptions(max_pixels=4096 * 4096, fit_box=28)
    photo = np.asarray(Image.fromarray(image).resize((1024, 768)))
    png, jpeg, big_jpeg = encoded(image, "PNG"), encoded(image, "JPEG"), encoded(photo, "JPEG")
    body = json.dumps({"instances": [image.tolist()]}).encode()

    def json_instance() -> None:
        for index, source in enumerate(parse_json(body)):
            from_array(source, options, index)

    rows = {
        "decode 28x28 PNG": best_us(lambda: decode_image(png, options, 0)),
        "decode 28x28 JPEG": best_us(lambda: decode_image(jpeg, options, 0)),
        "decode 1024x768 JPEG": best_us(lambda: decode_image(big_jpeg, options, 0), 50),
        "JSON instance: validate + pixels": best_us(json_instance),
    }
    if (ood := ood_batch()) is not None:
        rows[f"ood score, {OOD_BATCH} latents"] = best_us(ood, 200)
    print(f"checkout: {Path(uploads.__file__).resolve().parents[1]}")
    for name, value in rows.items():
        print(f"{name:<34} {value:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
