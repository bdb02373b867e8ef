"""The similarity graph cache: built once, opened memory-mapped after, never trusted blindly."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.contract.repository import latest_version, model_names
from app.contract.similarity import GraphCache, SimilarityIndex
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import serve, wait_ready


def _load(model_repo: Path, cache: GraphCache | None) -> SimilarityIndex:
    path, manifest = latest_version(model_repo, "mnist")
    assert manifest.index is not None
    return SimilarityIndex.load(path, manifest.index, cache)


def _answers(index: SimilarityIndex, model_repo: Path) -> tuple[list[list[str]], list[list[float]]]:
    _, manifest = latest_version(model_repo, "mnist")
    latents = np.random.default_rng(0).normal(size=(20, manifest.latent_dim)).astype(np.float32)
    found = index.search(latents, 5)
    return found.ids, found.distances


def test_a_graph_is_built_once_then_opened_with_the_same_answers(
    model_repo: Path, tmp_path: Path
) -> None:
    cache = GraphCache(tmp_path / "graphs")
    built = _load(model_repo, cache)
    assert not built.from_cache
    files = sorted(p.suffix for p in cache.directory.iterdir())
    assert files == [".sha256", ".usearch"]
    opened = _load(model_repo, cache)
    assert opened.from_cache
    plain = _load(model_repo, None)
    assert (
        _answers(opened, model_repo) == _answers(built, model_repo) == _answers(plain, model_repo)
    )


def test_a_damaged_graph_is_rebuilt_and_replaced(
    model_repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = GraphCache(tmp_path / "graphs")
    expected = _answers(_load(model_repo, cache), model_repo)
    (graph,) = cache.directory.glob("*.usearch")
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="app.contract.similarity"):
        again = _load(model_repo, cache)
    assert not again.from_cache and "damaged" in caplog.text
    assert _answers(again, model_repo) == expected
    assert _load(model_repo, cache).from_cache  # the rebuilt graph was cached again


def test_a_cache_that_cannot_be_written_only_costs_the_rebuild(
    model_repo: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    cache = GraphCache(blocked / "graphs")
    first, second = _load(model_repo, cache), _load(model_repo, cache)
    assert not first.from_cache and not second.from_cache
    assert _answers(first, model_repo) == _answers(second, model_repo)


def test_the_service_caches_graphs_beside_the_repository_and_serves_as_before(
    model_repo: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "models"
    shutil.copytree(model_repo, repository)
    settings = Settings(model_repository=repository, default_model="mnist")
    _, manifest = latest_version(repository, "mnist")
    query = {"embedding": [0.5] * manifest.latent_dim}
    cached = repository / ".index-cache"
    answers, written = [], []
    for _ in range(2):  # the second start opens what the first one cached
        with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
            wait_ready(client)
            answer = client.post("/similar?k=3", json=query)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        written.append({p.name: p.stat().st_mtime_ns for p in cached.iterdir()})
    assert answers[0] == answers[1]
    assert written[0] == written[1]  # opened, not written again
    graphs = [name for name in written[0] if name.endswith(".usearch")]
    assert len(graphs) == len(model_names(repository)) and len(written[0]) == 2 * len(graphs)
    assert set(model_names(repository)) == set(model_names(model_repo))  # not a model
