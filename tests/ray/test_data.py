"""`latentserve embed --engine ray` on the two-node cluster: the local engine's output, to the
bit, for 10,000 Fashion-MNIST test images; bad files skipped alike; an interrupted run
resumed from its parts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.main import create_app
from app.settings import Settings
from latentserve.bulk import Item, Parts
from tests.app.conftest import serve, wait_ready
from tests.ray.conftest import BIN, Cluster

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fashion-mnist"
VERSION = 4  # the shipped one


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """The local engine's service: the shipped model, one process."""
    settings = Settings(model_repository=ROOT / "models", models=[MODEL], grpc_port=0)
    with serve(create_app(settings)) as url:
        wait_ready(httpx.Client(base_url=url, timeout=30))
        yield url


def embed(src: Path, out: Path, *engine: str) -> None:
    command = [str(BIN / "latentserve"), "embed", str(src), "--out", str(out), "--model", MODEL]
    result = subprocess.run([*command, *engine], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def local(src: Path, out: Path, url: str) -> None:
    embed(src, out, "--url", url)


def on_ray(src: Path, out: Path, cluster: Cluster) -> None:
    embed(
        src,
        out,
        "--engine",
        "ray",
        "--address",
        cluster.address,
        "--repository",
        str(ROOT / "models"),
    )


def read(out: Path) -> tuple[np.ndarray, list[str], dict]:
    ids = out.with_suffix(".ids.txt").read_text().splitlines()
    return np.load(out), ids, json.loads(out.with_suffix(".json").read_text())


def test_ten_thousand_images_equal_the_local_engine(
    cluster: Cluster, service: str, tmp_path: Path
) -> None:
    from training.datasets import load_dataset

    src = tmp_path / "t10k.npy"
    np.save(src, load_dataset(MODEL).x_test)
    local(src, tmp_path / "local.npy", service)
    on_ray(src, tmp_path / "ray.npy", cluster)
    expected, expected_ids, expected_meta = read(tmp_path / "local.npy")
    got, ids, meta = read(tmp_path / "ray.npy")
    assert got.shape == expected.shape == (10_000, 1568)
    assert float(np.abs(got - expected).max()) <= 1e-6
    assert ids == expected_ids and meta == expected_meta == {
        "model": MODEL, "version": VERSION, "count": 10_000, "dim": 1568
    }  # fmt: skip


def test_a_folder_with_a_bad_file_is_skipped_alike(
    cluster: Cluster, service: str, tmp_path: Path
) -> None:
    from training.datasets import load_dataset

    folder = tmp_path / "photos"
    (folder / "shoes").mkdir(parents=True)
    for i, image in enumerate(load_dataset(MODEL).x_test[:6]):
        Image.fromarray(image).resize((64, 64)).save(folder / "shoes" / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    local(folder, tmp_path / "local.npy", service)
    on_ray(folder, tmp_path / "ray.npy", cluster)
    expected, expected_ids, _ = read(tmp_path / "local.npy")
    got, ids, _ = read(tmp_path / "ray.npy")
    assert ids == expected_ids and len(ids) == 6
    assert float(np.abs(got - expected).max()) <= 1e-6
    skipped = (tmp_path / "ray.npy.skipped.tsv").read_text()
    assert skipped.startswith("broken.png\t")
    assert skipped == (tmp_path / "local.npy.skipped.tsv").read_text()


def test_an_interrupted_run_resumes_from_its_parts(
    cluster: Cluster, service: str, tmp_path: Path
) -> None:
    """The parts an earlier run left (here: the first 8 images, their vectors set to zero so
    that it shows) are kept, and only the rest is embedded."""
    from training.datasets import load_dataset

    src = tmp_path / "images.npy"
    np.save(src, load_dataset(MODEL).x_test[:40])
    local(src, tmp_path / "whole.npy", service)
    out = tmp_path / "resumed.npy"
    parts = Parts.open(Path(f"{out}.parts"), MODEL, VERSION)
    earlier = [Item(i, str(i), lambda: b"") for i in range(8)]
    parts.write(earlier, np.zeros((8, 1568), np.float32))
    on_ray(src, out, cluster)
    whole, _, _ = read(tmp_path / "whole.npy")
    resumed, ids, _ = read(out)
    assert ids == [str(i) for i in range(40)]
    assert not resumed[:8].any()  # taken from the parts, not embedded again
    assert float(np.abs(resumed[8:] - whole[8:]).max()) <= 1e-6
    assert not Path(f"{out}.parts").exists()
