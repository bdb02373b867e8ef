"""One short training on a few hundred images, exported and reloaded for real."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app.contract.repository import (
    OPERATION_HEADS,
    PARTS,
    Manifest,
    read_manifest,
    sha256_files,
    verify_files,
)
from tests.conftest import TINY_TRAINING, tiny_dataset
from training.datasets import DatasetError, load_dataset
from training.evaluate import evaluate
from training.export import export_repository
from training.pipeline import describe
from training.train import embed, train


@pytest.fixture(scope="module")
def few_hundred() -> object:
    """300 real Fashion-MNIST images when installed, else generated ones."""
    try:
        full = load_dataset("fashion-mnist")
    except DatasetError:
        return tiny_dataset("fashion-mnist")
    from training.datasets import Dataset

    return Dataset(
        full.name,
        full.split,
        full.class_names,
        full.x_train[:300],
        full.y_train[:300],
        full.x_test[:100],
        full.y_test[:100],
    )


@pytest.fixture(scope="module", params=["dense", "conv"])
def exported(few_hundred, tmp_path_factory: pytest.TempPathFactory, request):  # type: ignore[no-untyped-def]
    model = replace(TINY_TRAINING.model, head=request.param)
    config = replace(TINY_TRAINING, model=model, fine_tune_epochs=1)
    trained = train(few_hundred, config, verbose=0)
    parts = {"encoder": trained.encoder, "decoder": trained.decoder, "classifier": trained.head}
    metrics = evaluate(trained, few_hundred, embed(trained.encoder, few_hundred.x_test))
    path = export_repository(
        parts, tmp_path_factory.mktemp("out"), describe(few_hundred, config, metrics)
    )
    return trained, path, few_hundred


def test_exported_graphs_match_keras(exported) -> None:  # type: ignore[no-untyped-def]
    trained, path, dataset = exported
    pixels = dataset.x_test[:64]
    encoder = tf.saved_model.load(str(path / "encoder")).signatures["serving_default"]
    decoder = tf.saved_model.load(str(path / "decoder")).signatures["serving_default"]
    head = tf.saved_model.load(str(path / "classifier")).signatures["serving_default"]
    latents = encoder(pixels=tf.constant(pixels))["latent"].numpy()
    keras_latents = trained.encoder.predict(pixels, verbose=0)
    assert np.max(np.abs(latents - keras_latents)) <= 1e-5
    decoded = decoder(latent=tf.constant(latents))
    keras_decoded = trained.decoder.predict(keras_latents, verbose=0)
    assert np.max(np.abs(decoded["reconstruction"].numpy() - keras_decoded)) <= 1e-5
    assert decoded["pixels"].dtype == tf.uint8
    expected_pixels = np.round(np.clip(keras_decoded, 0, 1) * 255)
    assert np.max(np.abs(decoded["pixels"].numpy().astype(int) - expected_pixels)) <= 1
    probabilities = head(latent=tf.constant(latents))["probabilities"].numpy()
    keras_probabilities = trained.head.predict(keras_latents, verbose=0)
    assert np.max(np.abs(probabilities - keras_probabilities)) <= 1e-5
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_signatures_are_as_documented(exported) -> None:  # type: ignore[no-untyped-def]
    _, path, _ = exported
    manifest = read_manifest(path)
    for part, spec in manifest.signatures.items():
        function = tf.saved_model.load(str(path / part)).signatures["serving_default"]
        inputs = function.structured_input_signature[1]
        assert set(inputs) == set(spec.inputs)
        for name, tensor in inputs.items():
            assert tensor.dtype.name == spec.inputs[name].dtype
            assert list(tensor.shape) == spec.inputs[name].shape
        assert set(function.structured_outputs) == set(spec.outputs)
        for name, tensor in function.structured_outputs.items():
            assert tensor.dtype.name == spec.outputs[name].dtype
            assert list(tensor.shape) == spec.outputs[name].shape


def test_manifest_schema_and_checksums(exported) -> None:  # type: ignore[no-untyped-def]
    _, path, dataset = exported
    manifest = read_manifest(path)
    assert isinstance(manifest, Manifest)
    assert manifest.version == 1 and manifest.name == dataset.name
    assert manifest.latent.dim == int(np.prod(manifest.latent.shape))
    assert manifest.files == sha256_files(path)
    assert {f.split("/")[0] for f in manifest.files} == {*PARTS, "litert"}
    assert manifest.litert is not None and set(manifest.litert.files) == set(OPERATION_HEADS)
    assert set(manifest.litert.files.values()) <= set(manifest.files)  # checksummed too
    verify_files(path, manifest)
    assert not list(path.parent.glob(".tmp-*"))  # staging directory was renamed away


def test_tampered_file_is_detected(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from app.contract.repository import RepositoryError

    _, path, _ = exported
    copy = tmp_path / path.parent.name / "1"
    shutil.copytree(path, copy)
    (copy / "encoder" / "saved_model.pb").write_bytes(b"not a graph")
    with pytest.raises(RepositoryError, match="checksum mismatch"):
        verify_files(copy, read_manifest(copy))


def test_next_export_gets_the_next_version(exported) -> None:  # type: ignore[no-untyped-def]
    trained, path, _ = exported
    parts = {"encoder": trained.encoder, "decoder": trained.decoder, "classifier": trained.head}
    second = export_repository(parts, path.parent.parent, read_manifest(path))
    assert second.name == "2"
    assert read_manifest(second).version == 2
