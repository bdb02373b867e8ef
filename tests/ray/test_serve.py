"""deploy/ray/serve.yaml on a real two-node cluster: two replicas on two nodes, one node
lost under load and brought back; no request lost, answers the single-process service's."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from app.main import create_app
from app.settings import Settings
from latentserve import Client
from tests.app.conftest import serve
from tests.conftest import free_port
from tests.ray.conftest import BIN, Cluster, session_pids

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fashion-mnist"
READY_TIMEOUT_S = 180
LOAD_THREADS = 4


def replica_titles() -> dict[int, str]:
    """Every Serve replica process of the app, by pid: its title (what it is doing)."""
    titles = {}
    for entry in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        if command.startswith(b"ray::ServeReplica:latentserve") and state != "Z":
            titles[int(entry)] = command.decode(errors="replace")
    return titles


def replica_sessions() -> list[int]:
    """The session (node) of every Serve replica process done initialising."""
    return sorted(
        os.getsid(pid) for pid, title in replica_titles().items() if "initialize" not in title
    )


def wait_for(condition: object, what: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def serve_config(tmp_path: Path, http_port: int) -> Path:
    """The shipped config, pointed at this checkout's models, the proxy on the head only, two
    replicas (instead of autoscaling from two)."""
    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve.yaml").read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    (application,) = config["applications"]
    application["runtime_env"]["env_vars"].update(
        {
            "LATENTSERVE_MODEL_REPOSITORY": str(ROOT / "models"),
            "LATENTSERVE_MODELS": MODEL,
            "LATENTSERVE_INDEX_CACHE_DIR": str(tmp_path / "index-cache"),
        }
    )
    (deployment,) = application["deployments"]
    deployment.pop("autoscaling_config")
    deployment["num_replicas"] = 2
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    port = free_port()
    config = serve_config(tmp_path_factory.mktemp("serve"), port)
    subprocess.run(
        [str(BIN / "serve"), "run", "--address", cluster.address, "--non-blocking", str(config)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, "the Serve application")
    wait_for(lambda: cluster.running_replicas() == 2, "two replicas running")
    return url


def test_two_replicas_on_two_nodes(cluster: Cluster, deployed: str) -> None:
    assert cluster.head is not None
    nodes = {cluster.head.session, *(w.session for w in cluster.workers)}
    assert set(replica_sessions()) == nodes  # max_replicas_per_node: 1


def fashion_pngs(count: int) -> list[bytes]:
    from training.datasets import load_dataset

    files = []
    for image in load_dataset(MODEL).x_test[:count]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def test_answers_equal_the_single_process_service(deployed: str) -> None:
    files = fashion_pngs(64)
    settings = Settings(model_repository=ROOT / "models", models=[MODEL], grpc_port=0)
    with serve(create_app(settings)) as local_url, Client(local_url) as local:
        wait_for(lambda: httpx.get(f"{local_url}/readyz").status_code == 200, "local service")
        expected = local.classify(files, model=MODEL)
    with Client(deployed) as remote:
        got = remote.classify(files, model=MODEL)
        embedded = remote.embed(files[:8], model=MODEL).vectors
    assert got.model == expected.model
    assert [p.label for p in got.predictions] == [p.label for p in expected.predictions]
    np.testing.assert_allclose(
        [p.probabilities for p in got.predictions],
        [p.probabilities for p in expected.predictions],
        atol=1e-6,
    )
    assert embedded.shape == (8, 1568)


def test_a_node_lost_under_load_loses_no_request(
    cluster: Cluster, deployed: str, tmp_path: Path
) -> None:
    files = fashion_pngs(4)
    stop = threading.Event()
    answered: list[int] = []
    failures: list[str] = []
    clients = [Client(deployed, retries=8) for _ in range(LOAD_THREADS)]

    def load(client: Client) -> None:
        while not stop.is_set():
            try:
                client.classify(files, model=MODEL)
                answered.append(1)
            except Exception as err:  # every kind counts as a lost request
                failures.append(repr(err)[:300])

    threads = [threading.Thread(target=load, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        time.sleep(5)
        before = len(answered)
        lost = cluster.workers[-1]
        lost.kill()  # one replica, and its node, gone at once
        assert session_pids(lost.session) == []
        time.sleep(10)
        during = len(answered) - before
        replacement = cluster.add_worker()
        wait_for(lambda: cluster.running_replicas() == 2, "the replica restored")
        restored = replacement.session in replica_sessions()
        time.sleep(5)  # and serving again under the load
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    retried = sum(c.retried for c in clients)
    for client in clients:
        client.close()
    report = {
        "requests_answered": len(answered),
        "answered_while_one_node_was_gone": during,
        "retried_by_the_client": retried,
        "failed": len(failures),
    }
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "ray-node-loss.json").write_text(json.dumps(report, indent=2))
    assert failures == [], failures[:5]
    assert during > 0  # the other replica kept answering
    assert restored, replica_titles()  # on the node that came back (one per node)
    assert cluster.running_replicas() == 2
