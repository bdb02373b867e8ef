"""What serving through LiteRT instead of the TensorFlow runtime would give: memory, start, speed.

    .venv/bin/python bench/runtimes.py [--models fashion-mnist,mnist,fashion-mnist-10]

Issue 29's memory target (≤ 600 MB per worker) is out of reach through TensorFlow: importing it
alone reaches 597 MB (bench/memory.py). This experiment measures the other runtime a SavedModel
can be served by without TensorFlow, LiteRT (PyPI `ai-edge-litert`, the TensorFlow Lite
interpreter with its XNNPACK CPU kernels), on the shipped models and the service's own graph:

1. In a TensorFlow process: each version's composed encoder→head graph (`classify`, as
   app.models.inference builds it for /classify) is converted to a LiteRT flatbuffer
   (`tf.lite.TFLiteConverter`, default options: float32 kernels, no quantisation) and its
   outputs on 512 test images kept; then the RSS of a process that has imported TensorFlow as
   the service does and loaded every version's SavedModels.
2. In a fresh process for each runtime, one thread each (the service's `inference_threads`
   default): RSS after the import and after loading every version, and calls on the first
   version at batch sizes 1, 32, 128 and 512 (the same images), alternating the runtimes.
3. Parity: the largest difference of any probability between the runtimes, and how many of the
   512 predictions agree.

Nothing here changes what the service serves; the figures are in docs/benchmarks.md
("Another runtime?").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 32, 128, 512)
IMAGES = 512
ROUNDS = 3

CONVERT = """
import json, sys, time
import numpy as np
from pathlib import Path
from app.contract.repository import PARTS, latest_version
from app.models.inference import _compose, configure_threads, tf
configure_threads(1)
out = Path(sys.argv[1])
pixels = np.load(".data/fashion-mnist.npz")["x_test"][:%(images)d]
for name in sys.argv[2].split(","):
    path, manifest = latest_version(Path("models"), name)
    modules = {part: tf.saved_model.load(str(path / part)) for part in PARTS}
    functions = {part: m.signatures["serving_default"] for part, m in modules.items()}
    classify = _compose(functions, manifest.input_shape)["classify"]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify], modules["encoder"])
    (out / f"{name}.tflite").write_bytes(converter.convert())
    np.save(out / f"{name}.tf.npy", classify(tf.constant(pixels))["probabilities"].numpy())
"""

# Both runtimes' children print one JSON object: RSS (MB) after import and after loading, and
# seconds per call at each batch size on the first model.
MEASURE = """
import json, re, sys, time
from pathlib import Path
import numpy as np

def rss():
    text = Path("/proc/self/status").read_text()
    return {f: int(re.search(rf"{f}:\\s+(\\d+) kB", text).group(1)) / 1024
            for f in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}

runtime, out, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
started = time.perf_counter()
if runtime == "tensorflow":
    from app.contract.repository import PARTS, latest_version
    from app.models.inference import _compose, configure_threads, tf
    configure_threads(1)
    imported, after_import = time.perf_counter() - started, rss()
    calls = []
    for name in names:
        path, manifest = latest_version(Path("models"), name)
        modules = {part: tf.saved_model.load(str(path / part)) for part in PARTS}
        functions = {part: m.signatures["serving_default"] for part, m in modules.items()}
        composed = _compose(functions, manifest.input_shape)
        calls.append((modules, composed["classify"]))
    call = lambda x: calls[0][1](tf.constant(x))["probabilities"].numpy()
else:
    from ai_edge_litert.interpreter import Interpreter
    imported, after_import = time.perf_counter() - started, rss()
    interpreters = [Interpreter(model_path=str(out / f"{n}.tflite"), num_threads=1) for n in names]
    def run(interpreter, x):
        (inp,) = interpreter.get_input_details()
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        (probabilities,) = [o for o in interpreter.get_output_details() if o["shape"][-1] == 10]
        return interpreter.get_tensor(probabilities["index"])
    call = lambda x: run(interpreters[0], x)
pixels = np.load(".data/fashion-mnist.npz")["x_test"][:%(images)d]
warm = np.zeros((1, 28, 28), np.uint8)
for x in (warm, pixels):
    call(x)
loaded = rss()
np.save(out / f"{names[0]}.{runtime}.npy", call(pixels))
seconds = {}
for n in %(batches)s:
    x = pixels[:n]
    call(x)
    reps = max(20, 4000 // n)
    t = time.perf_counter()
    for _ in range(reps):
        call(x)
    seconds[n] = (time.perf_counter() - t) / reps
print(json.dumps({"import_s": imported, "after_import": after_import, "loaded": loaded,
                  "seconds": seconds, "peak": rss()["VmHWM"]}))
"""


def child(code: str, *args: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fashion-mnist,mnist,fashion-mnist-10")
    args = parser.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        child(CONVERT % {"images": IMAGES}, tmp, args.models)
        code = MEASURE % {"images": IMAGES, "batches": BATCHES}
        runs: dict[str, list[dict]] = {"tensorflow": [], "litert": []}
        for _ in range(ROUNDS):
            for runtime in runs:
                runs[runtime].append(json.loads(child(code, runtime, tmp, args.models)))
        first = args.models.split(",")[0]
        reference = np.load(Path(tmp) / f"{first}.tf.npy")
        served = {r: np.load(Path(tmp) / f"{first}.{r}.npy") for r in runs}
        sizes = {n: (Path(tmp) / f"{n}.tflite").stat().st_size for n in args.models.split(",")}

    def median(values: list[float]) -> float:
        return float(np.median(values))

    print(f"Models: {args.models}; {ROUNDS} rounds, one fresh process per runtime and round, "
          "one thread; medians.\n")  # fmt: skip
    print("| runtime | import s | RSS after import MB | RSS, every model loaded MB (anonymous, "
          "file-backed) | peak MB | " + " | ".join(f"images/s at batch {n}" for n in BATCHES)
          + " |")  # fmt: skip
    print("| --- " * (5 + len(BATCHES)) + "|")
    for runtime, rounds in runs.items():
        kinds = ("VmRSS", "RssAnon", "RssFile")
        loaded = {k: median([r["loaded"][k] for r in rounds]) for k in kinds}
        rates = [median([n / r["seconds"][str(n)] for r in rounds]) for n in BATCHES]
        print(
            f"| {runtime} | {median([r['import_s'] for r in rounds]):.2f} "
            f"| {median([r['after_import']['VmRSS'] for r in rounds]):.0f} "
            f"| {loaded['VmRSS']:.0f} ({loaded['RssAnon']:.0f}, {loaded['RssFile']:.0f}) "
            f"| {median([r['peak'] for r in rounds]):.0f} | "
            + " | ".join(f"{rate:.0f}" for rate in rates) + " |"
        )  # fmt: skip
    for runtime, probabilities in served.items():
        agree = int((probabilities.argmax(1) == reference.argmax(1)).sum())
        gap = float(np.abs(probabilities - reference).max())
        print(f"\n{runtime} against the SavedModel's own call on {first}: {agree}/{IMAGES} "
              f"predictions agree, largest probability difference {gap:.2e}", end="")  # fmt: skip
    print("\n\nLiteRT flatbuffers (classify graph): "
          + ", ".join(f"{n} {s / 1e6:.2f} MB" for n, s in sizes.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
