"""The benchmark's own parts that decide its figures: server process trees and the peers'
shared model code, which must answer what the service answers."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "peer_servers"))  # as the peers import it


def test_a_server_stops_with_its_whole_process_tree(tmp_path: Path) -> None:
    """Peak RSS sums every process of a multi-process server, and stopping it leaves none:
    peers like MLServer and BentoML run workers beside their main process."""
    from bench.harness import Server

    server = Server.uvicorn("bench.hello:app", {}, False, tmp_path / "hello.log", 2)
    with server:
        pids = server.pids()
        assert len(pids) >= 3  # uvicorn's supervisor and its two workers
    assert server.process_count == len(pids)
    assert server.total_peak_mb > server.peak_mb > 10
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_granian_serves_the_same_app_and_stops_whole(tmp_path: Path) -> None:
    """The granian rows of `make bench` serve the service's own app (here the no-model
    floor: same routes, middlewares and answers' shape) and leave no process behind."""
    import httpx

    from bench.harness import Server, multipart, sample_pngs

    env = {"LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models")}
    with Server.granian("bench.floor:app_from_env", env, tmp_path / "granian.log") as server:
        pids = server.pids()
        reply = httpx.post(
            server.url + "/classify?model=fashion-mnist",
            content=multipart(sample_pngs("fashion-mnist", 1)),
            headers={"Content-Type": "multipart/form-data; boundary=latentservebench"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"]["name"] == "fashion-mnist"
        assert "x-request-id" in reply.headers  # the app's own access middleware ran
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_each_workers_connections_are_counted(tmp_path: Path) -> None:
    """The 2-worker rows record which worker accepted how many of wrk's connections."""
    import socket

    from bench.harness import Server

    with Server.uvicorn("bench.hello:app", {}, False, tmp_path / "hello.log", 2) as server:
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
        try:
            for client in clients:  # answered, so accepted by a worker
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(1024).startswith(b"HTTP/1.1 200")
            split = server.connections_per_process()
        finally:
            for client in clients:
                client.close()
    assert sum(split) == 6 and 1 <= len(split) <= 2 and split == sorted(split, reverse=True)


def test_wrk_rows_say_where_the_machines_cores_went(tmp_path: Path) -> None:
    """Every load run reports the cores wrk used and the cores busy on the whole machine
    beside the server's: a server short of the machine's cores was either starved by the load
    generator or left them idle (issue 29's one-worker cores target)."""
    from bench.harness import Server, run_wrk, wrk_script

    with Server.uvicorn("bench.hello:app", {}, False, tmp_path / "hello.log") as server:
        cpu = server.cpu_seconds()
        result = run_wrk(server.url + "/", wrk_script(tmp_path, None), 8, 2)
        server_cores = (server.cpu_seconds() - cpu) / 2
    assert result["requests"] > 100 and result["errors"] == 0
    assert 0.01 < result["client_cores"] <= os.cpu_count()  # type: ignore[operator]
    # The machine was at least as busy as the server and wrk together (rounding: one tick).
    together = server_cores + result["client_cores"]
    assert together - 0.1 <= result["machine_cores"] <= os.cpu_count() + 0.01  # type: ignore[operator]


@pytest.mark.slow
def test_the_peers_model_code_answers_what_the_service_answers() -> None:
    """bench/peer_servers/composed.py (what every peer serves) gives the service's
    probabilities for real test images decoded from PNG."""
    from app.contract.repository import latest_version
    from app.models.inference import load_version
    from bench.harness import sample_pngs

    path, manifest = latest_version(ROOT / "models", "fashion-mnist")
    composed = importlib.import_module("composed")
    peer = composed.Classifier(str(path))
    pngs = sample_pngs("fashion-mnist", 16)
    pixels = np.stack([composed.decode_png(png) for png in pngs])
    expected = load_version(path, manifest).classify(pixels)
    got = peer.classify(pixels)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [row["label"] for row in composed.answer(got)] == expected.argmax(axis=1).tolist()
