"""Decode + frame time per image: this checkout against another, alternating in one run.

    git archive <ref> | tar -x -C /tmp/before      # the checkout to compare against
    .venv/bin/python bench/framing.py --before /tmp/before [--rounds 30] [--instructions]

Times the service's decode path (`app.contract.images.decode_image`: decoding, EXIF orientation,
polarity, framing) on what uploads look like: a Fashion-MNIST test image as a 28x28 PNG (the
throughput benchmark's request) and JPEG, a 280x280 drawing from the demo page, a photo and a
scan as training/render.py makes them, and a 1024x768 phone-sized JPEG. One process per
checkout stays up; they time bursts of decodes in turn (so the machine's drift, which is large
here, hits both alike), and each figure is the fastest burst per decode. `--instructions`
counts instructions per decode under valgrind's callgrind instead: the same count in every
run, however busy the machine (needs `apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from app.contract.images import ImageOptions, decode_image
inputs = {name: bytes.fromhex(data) for name, (data, _) in json.loads(sys.stdin.readline()).items()}
options = ImageOptions(max_pixels=4096 * 4096, fit_box=28)
for line in sys.stdin:  # "name count": time `count` decodes, answer microseconds per decode
    name, count = line.rsplit(" ", 1)
    data, count = inputs[name], int(count)
    start = time.perf_counter()
    for _ in range(count):
        decode_image(data, options, 0)
    print((time.perf_counter() - start) / count * 1e6, flush=True)
"""


COUNTER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from app.contract.images import ImageOptions, decode_image
data, count = bytes.fromhex(sys.stdin.readline().strip()), int(sys.argv[2])
options = ImageOptions(max_pixels=4096 * 4096, fit_box=28)
for _ in range(count):
    decode_image(data, options, 0)
"""
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
# A thread pool spinning while it waits executes instructions that depend on the timing.
QUIET_THREADS = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WARM_UP = 10  # decodes before counting: lazy imports and first-call caches
CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def instructions(checkout: Path, data: bytes, count: int) -> int:
    """Instructions a process that decodes `data` `count` times executes (callgrind: the same
    count every run, whatever else the machine does)."""
    result = subprocess.run(
        [*CALLGRIND, sys.executable, "-c", COUNTER, str(checkout), str(count)],
        input=data.hex() + "\n",
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
        env={**os.environ, **QUIET_THREADS},
    )
    found = REFS.search(result.stderr)
    assert found, result.stderr[-2000:]
    return int(found.group(1).replace(",", ""))


def count_instructions(before: Path, files: dict[str, tuple[str, int]]) -> None:
    """The table in instructions per decode: a process that decodes WARM_UP + n times less one
    that decodes WARM_UP times (start-up and first-use costs cancel out), over n."""
    sides = {"before": before, "after": ROOT}
    print("| input | before, instructions | after, instructions | after / before |")
    print("| --- | ---: | ---: | ---: |")
    for name, (data, count) in files.items():
        counts = {}
        for side, path in sides.items():
            warm = instructions(path, bytes.fromhex(data), WARM_UP)
            full = instructions(path, bytes.fromhex(data), WARM_UP + count)
            counts[side] = (full - warm) / count
        ratio = counts["after"] / counts["before"]
        print(f"| {name} | {counts['before']:,.0f} | {counts['after']:,.0f} | {ratio:.2f}× |")


class Timer:
    """A process of one checkout that times decodes on request (kept running, so the two
    checkouts can alternate burst by burst)."""

    def __init__(self, checkout: Path, spec: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", TIMER, str(checkout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=checkout,
        )
        self._ask(spec)

    def _ask(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def time(self, name: str, count: int) -> float:
        self._ask(f"{name} {count}")
        assert self.process.stdout is not None
        return float(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def inputs() -> dict[str, tuple[str, int]]:
    """Each input's bytes (hex, for the command line) and how many decodes one repeat times."""
    import io

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from training.datasets import load_dataset
    from training.render import PHOTO, SCAN, render

    image = load_dataset("fashion-mnist").x_test[0]

    def encoded(pixels: np.ndarray, fmt: str) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(
            buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {})
        )
        return buffer.getvalue()

    drawing = np.zeros((280, 280), np.uint8)
    drawing[60:220, 120:160] = 255  # a stroke on the demo page's black canvas
    phone = np.asarray(Image.fromarray(255 - image).resize((1024, 768)))
    files = {
        "28x28 PNG": (encoded(image, "PNG"), 300),
        "28x28 JPEG": (encoded(image, "JPEG"), 300),
        "demo drawing 280x280 PNG": (encoded(drawing, "PNG"), 40),
        "photo (render.PHOTO)": (render(image, PHOTO, np.random.default_rng(1)), 20),
        "scan (render.SCAN)": (render(image, SCAN, np.random.default_rng(1)), 20),
        "1024x768 JPEG": (encoded(phone, "JPEG"), 10),
    }
    return {name: (data.hex(), n) for name, (data, n) in files.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout to compare against")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per decode under valgrind's callgrind instead of timing "
        "(repeatable; about 10 minutes)",
    )
    parser.add_argument("--rounds", type=int, default=30, help="bursts per side and input")
    args = parser.parse_args()
    files = inputs()
    if args.instructions:
        count_instructions(args.before, files)
        return 0
    timers = {
        "before": Timer(args.before, json.dumps(files)),
        "after": Timer(ROOT, json.dumps(files)),
    }
    print(f"| input | before, µs | after, µs | after / before, {args.rounds} alternations |")
    print("| --- | ---: | ---: | ---: |")
    for name, (_, count) in files.items():
        best = {side: float("inf") for side in timers}
        for _ in range(args.rounds):  # alternate bursts: drift hits both sides alike
            for side, timer in timers.items():
                best[side] = min(best[side], timer.time(name, count))
        ratio = best["after"] / best["before"]
        print(f"| {name} | {best['before']:.0f} | {best['after']:.0f} | {ratio:.2f}× |")
    for timer in timers.values():
        timer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
