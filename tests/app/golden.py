"""Recorded answers of every protocol, to hold the service's behaviour still while its inside
changes: a fixed set of requests to the shipped models (native, OIP V2, TF Serving: answers and
errors), each answer's status, content type, model headers and body bytes.

    .venv/bin/python -m tests.app.golden      # records tests/app/golden/answers.json

tests/app/test_golden.py replays them against the current code. Bodies are compared byte for
byte on the machine kind they were recorded on (the CPU's name is recorded with them);
elsewhere TensorFlow may pick other kernels, and numbers are compared to 1e-5 instead.
"""

from __future__ import annotations

import base64
import io
import json
import platform
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = Path(__file__).parent / "golden" / "answers.json"
KEPT_HEADERS = (
    "content-type",
    "x-model-name",
    "x-model-version",
    "x-reconstruction-error",
    "x-ood-score",
    "x-in-distribution",
    "inference-header-content-length",
)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _samples() -> dict[str, bytes]:
    samples = {p.stem: p.read_bytes() for p in sorted((ROOT / "docs" / "samples").glob("*.png"))}
    photo = np.full((120, 90), 230, np.uint8)
    photo[30:90, 20:70] = 40  # a dark block on a light ground
    samples["photo"] = _png(photo)
    return samples


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _form(*files: bytes) -> dict[str, Any]:
    return {"files": [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)]}


def _binary_v2(files: list[bytes]) -> dict[str, Any]:
    blob = b"".join(len(f).to_bytes(4, "little") + f for f in files)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": [len(files)],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [
                {"name": "label"},
                {"name": "probabilities", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()
    return {
        "content": header + blob,
        "headers": {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)),
        },
    }


def requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments) of every recorded request."""
    s = _samples()
    boot, bag, seven, trouser, photo = (
        s["ankle-boot"],
        s["bag"],
        s["drawn-7"],
        s["trouser"],
        s["photo"],
    )
    pixels = np.asarray(Image.open(io.BytesIO(boot))).tolist()
    fm = "model=fashion-mnist"
    return [
        ("GET", "/models", {}),
        ("GET", "/models/mnist/versions/4", {}),
        ("GET", "/readyz", {}),
        ("POST", f"/classify?{fm}", _form(boot)),
        ("POST", f"/classify?{fm}&top_k=3", _form(boot, bag, trouser)),
        (
            "POST",
            "/classify?model=mnist",
            {"content": seven, "headers": {"content-type": "image/png"}},
        ),
        (
            "POST",
            f"/classify?{fm}&ood_threshold=0.5",
            {"json": {"instances": [pixels, {"b64": _b64(bag)}]}},
        ),
        ("POST", f"/classify?{fm}&debug=framed", _form(photo)),
        ("POST", f"/embed?{fm}", _form(boot, bag)),
        ("POST", f"/embed?{fm}&normalize=true", {"json": {"instances": [{"b64": _b64(trouser)}]}}),
        ("POST", f"/embed?{fm}", {**_form(boot), "headers": {"accept": "application/x-npy"}}),
        ("POST", "/reconstruct?model=mnist", _form(seven, photo)),
        ("POST", "/reconstruct?model=mnist", {**_form(seven), "headers": {"accept": "image/png"}}),
        ("POST", f"/similar?{fm}&k=3", _form(bag)),
        ("POST", "/similar?model=mnist&k=2&images=true", _form(seven)),
        ("POST", "/classify?model=nope", _form(boot)),
        ("POST", f"/classify?{fm}&version=9", _form(boot)),
        (
            "POST",
            f"/classify?{fm}",
            {"content": b"not an image", "headers": {"content-type": "image/png"}},
        ),
        ("POST", f"/classify?{fm}&resize=false", _form(photo)),
        ("POST", f"/classify?{fm}", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        ("POST", f"/classify?{fm}&top_k=abc", _form(boot)),
        ("GET", "/v2", {}),
        ("GET", "/v2/health/ready", {}),
        ("GET", "/v2/models/fashion-mnist", {}),
        ("GET", "/v2/models/fashion-mnist/versions/4/ready", {}),
        (
            "POST",
            "/v2/models/fashion-mnist/infer",
            {
                "json": {
                    "id": "r1",
                    "inputs": [
                        {
                            "name": "images",
                            "shape": [2],
                            "datatype": "BYTES",
                            "data": [_b64(boot), _b64(bag)],
                        }
                    ],
                }
            },
        ),
        (
            "POST",
            "/v2/models/fashion-mnist/versions/4/infer",
            {
                "json": {
                    "inputs": [
                        {
                            "name": "pixels",
                            "shape": [1, 28, 28],
                            "datatype": "UINT8",
                            "data": np.asarray(pixels).ravel().tolist(),
                        }
                    ],
                    "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
                }
            },
        ),
        ("POST", "/v2/models/fashion-mnist/infer", _binary_v2([boot, trouser])),
        (
            "POST",
            "/v2/models/fashion-mnist/infer",
            {
                "json": {
                    "inputs": [
                        {"name": "images", "shape": [1], "datatype": "BYTES", "data": [_b64(boot)]}
                    ],
                    "outputs": [{"name": "nope"}],
                }
            },
        ),
        ("POST", "/v2/models/nope/infer", {"json": {"inputs": []}}),
        ("GET", "/v1/models/fashion-mnist", {}),
        ("GET", "/v1/models/fashion-mnist/metadata", {}),
        (
            "POST",
            "/v1/models/fashion-mnist:predict",
            {"content": json.dumps({"instances": [{"b64": _b64(boot)}, {"b64": _b64(bag)}]})},
        ),
        (
            "POST",
            "/v1/models/fashion-mnist/versions/4:predict",
            {"json": {"signature_name": "reconstruct", "inputs": {"images": [{"b64": _b64(bag)}]}}},
        ),
        (
            "POST",
            "/v1/models/fashion-mnist:predict",
            {"json": {"signature_name": "embed", "instances": [pixels]}},
        ),
        (
            "POST",
            "/v1/models/fashion-mnist:classify",
            {"json": {"examples": [{"b64": _b64(trouser)}]}},
        ),
        (
            "POST",
            "/v1/models/fashion-mnist:predict",
            {"json": {"signature_name": "nope", "instances": []}},
        ),
    ]


def answer(response: httpx.Response) -> dict[str, Any]:
    headers = {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers}
    return {"status": response.status_code, "headers": headers, "body": _b64(response.content)}


def replay(client: httpx.Client) -> list[dict[str, Any]]:
    return [
        {"request": f"{method} {path}", **answer(client.request(method, path, **kwargs))}
        for method, path, kwargs in requests()
    ]


def machine() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def record() -> Path:
    from app.main import create_app
    from app.settings import Settings
    from tests.app.conftest import serve, wait_ready

    settings = Settings(model_repository=ROOT / "models", reload_interval_s=0)
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        answers = replay(client)
    ANSWERS.parent.mkdir(exist_ok=True)
    ANSWERS.write_text(json.dumps({"machine": machine(), "answers": answers}, indent=1) + "\n")
    return ANSWERS


if __name__ == "__main__":
    print(record())
