"""`latentserve embed`: folders and arrays in, Parquet or .npy out, resumable, nothing dropped
silently; against the real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from app.contract.repository import latest_version
from app.models.inference import ModelVersion, load_version
from latentserve import bulk
from latentserve.client import AsyncClient
from latentserve.idx import write_idx
from latentserve.results import Embeddings
from tests.app.conftest import digit_like

IMAGES = np.stack([digit_like(i) for i in range(19)])


@pytest.fixture(scope="module")
def direct(model_repo: Path) -> ModelVersion:
    return load_version(*latest_version(model_repo, "mnist"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """19 digits in two sub-folders (PNG and JPEG), plus a fake PNG, a dangling link and notes."""
    root = tmp_path / "images"
    for i, image in enumerate(IMAGES):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"{i:02d}.png")
    (root / "b" / "broken.png").write_bytes(b"this is not an image")
    (root / "a" / "gone.png").symlink_to(root / "nowhere.png")
    (root / "notes.txt").write_text("not an image, not picked up")
    return root


class CutOff(Exception):
    """The run is interrupted here (a crash, a Ctrl-C, a lost machine)."""


class CountingClient(AsyncClient):
    """A real client that counts the images it sends and can fail after some calls."""

    def __init__(self, url: str, fail_after: int | None = None) -> None:
        super().__init__(url)
        self.sent: list[int] = []
        self.fail_after = fail_after

    async def embed(self, images: Any, **kwargs: Any) -> Embeddings:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise CutOff
        self.sent.append(len(images))
        return await super().embed(images, **kwargs)


def embed_folder(src: Path, out: Path, url: str | AsyncClient, *args: Any, **kwargs: Any) -> Any:
    """bulk.embed_folder run to completion with a client for `url` (or the one given)."""

    async def run() -> Any:
        client = url if isinstance(url, AsyncClient) else AsyncClient(url)
        async with client:
            return await bulk.embed_folder(src, out, client, *args, **kwargs)

    return asyncio.run(run())


def test_a_folder_to_parquet_skipping_and_reporting_bad_files(
    base_url: str, folder: Path, tmp_path: Path, direct: ModelVersion
) -> None:
    out = tmp_path / "vectors.parquet"
    done, skipped = embed_folder(folder, out, base_url, "mnist")
    assert (done, skipped) == (19, 2)
    table = pq.read_table(out).to_pydict()
    ids = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    ids = [i for i in ids if i not in ("a/gone.png", "b/broken.png")]
    assert table["id"] == ids  # the source's order
    assert set(table["model"]) == {"mnist"} and set(table["version"]) == {1}
    vectors = np.array(table["vector"], np.float32)
    for path, vector in zip(table["id"], vectors, strict=True):
        image = IMAGES[int(Path(path).stem)]
        np.testing.assert_allclose(vector, direct.encode(image[None])[0], atol=1e-5)
    report = Path(f"{out}.skipped.tsv").read_text().splitlines()
    reasons = dict(line.split("\t") for line in report)
    assert set(reasons) == {"a/gone.png", "b/broken.png"}
    assert reasons["a/gone.png"].startswith("cannot read")
    assert "cannot decode image" in reasons["b/broken.png"]
    assert not Path(f"{out}.parts").exists()


def test_an_interrupted_run_resumes_without_embedding_twice(
    base_url: str, tmp_path: Path, direct: ModelVersion
) -> None:
    source = tmp_path / "digits.npy"
    np.save(source, IMAGES)
    out = tmp_path / "vectors.npy"
    first = CountingClient(base_url, fail_after=1)  # max_images 8: chunks of 8, 8, 3
    with pytest.raises(CutOff):
        embed_folder(source, out, first, "mnist", concurrency=1)
    assert first.sent == [8] and not out.exists()
    second = CountingClient(base_url)
    assert embed_folder(source, out, second, "mnist", concurrency=1) == (19, 0)
    assert sorted(second.sent) == [3, 8]  # only what the first run had not written
    np.testing.assert_allclose(np.load(out), direct.encode(IMAGES), atol=1e-5)
    assert (tmp_path / "vectors.ids.txt").read_text().split() == [str(i) for i in range(19)]
    assert json.loads((tmp_path / "vectors.json").read_text()) == {
        "model": "mnist",
        "version": 1,
        "count": 19,
        "dim": direct.manifest.latent_dim,
    }


def test_idx_source_and_what_is_refused(base_url: str, tmp_path: Path) -> None:
    source = write_idx(tmp_path / "t10k-images-idx3-ubyte", IMAGES[:5], compress=True)
    out = tmp_path / "idx.parquet"
    assert embed_folder(source, out, base_url, "mnist") == (5, 0)
    with pytest.raises(ValueError, match="exists"):
        embed_folder(source, out, base_url, "mnist")
    with pytest.raises(ValueError, match=r"\.parquet or \.npy"):
        embed_folder(source, tmp_path / "vectors.csv", base_url, "mnist")
    parts = tmp_path / "pinned.npy.parts"
    parts.mkdir()
    (parts / "meta.json").write_text(json.dumps({"model": "mnist", "version": 7}))
    with pytest.raises(ValueError, match="version 7"):
        embed_folder(source, tmp_path / "pinned.npy", base_url, "mnist", version=1)


def test_the_command_line(base_url: str, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    command = [str(Path(sys.executable).parent / "latentserve"), "embed", str(folder)]
    command += ["--out", str(out), "--model", "mnist", "--url", base_url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"19 embeddings in {out}; 2 skipped"
    assert "img/s" in result.stderr  # tqdm's rate
    assert "skipped b/broken.png" in result.stderr
    assert pq.read_table(out).num_rows == 19
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1 and "exists" in again.stderr
