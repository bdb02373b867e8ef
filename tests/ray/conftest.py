"""A real two-node Ray cluster on loopback: a head and a worker node, each its own
`ray start --block` process (and session), as two machines would run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port

ray = pytest.importorskip("ray", reason="Ray is the `ray` extra (make install has it)")

BIN = Path(sys.executable).parent
NODE_CPUS = "2"  # logical: a Serve replica and a Ray Data actor per node
START_TIMEOUT_S = 90


def session_pids(session: int) -> list[int]:
    """Every process of a node: `ray start --block` leads a session its raylet, its agents
    and its actors' workers all stay in."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if os.getsid(int(entry)) == session and stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry))  # (a killed process nobody reaped yet is gone)
            except (ProcessLookupError, FileNotFoundError):
                continue
    return found


def _marked(result: subprocess.CompletedProcess[str], marker: str) -> str | None:
    """The value a probe printed after `marker` (Ray may print warnings around it)."""
    if result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        if line.startswith(f"{marker} "):
            return line[len(marker) + 1 :]
    return None


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def session(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the session id

    def kill(self) -> None:
        """The machine goes away: every process of the node at once, no goodbye."""
        deadline = time.monotonic() + 30
        while pids := session_pids(self.session):
            assert time.monotonic() < deadline, f"node processes survive SIGKILL: {pids}"
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.2)
        self.process.wait(timeout=30)


@dataclass
class Cluster:
    address: str
    logs: Path
    head: Node | None = None
    workers: list[Node] = field(default_factory=list)

    def start_node(self, *args: str) -> Node:
        log = self.logs / f"node-{len(self.workers) + (self.head is not None)}.log"
        command = [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1"]
        command += [f"--num-cpus={NODE_CPUS}", "--disable-usage-stats", *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
            )  # fmt: skip
        return Node(process, log)

    def add_worker(self) -> Node:
        node = self.start_node(f"--address={self.address}")
        self.workers.append(node)
        self.wait_for_nodes(1 + len([w for w in self.workers if w.process.poll() is None]))
        return node

    def alive_nodes(self) -> int:
        script = (
            f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
            "print('ALIVE', sum(n['Alive'] for n in ray.nodes()))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        return int(_marked(result, "ALIVE") or 0)

    def running_replicas(self) -> int:
        """Replicas Serve's controller reports RUNNING (initialised and healthy)."""
        script = (
            "import json, ray; from ray import serve; "
            f"ray.init(address={self.address!r}, log_to_driver=False); "
            "apps = serve.status().applications; "
            "app = apps.get('latentserve'); "
            "states = app.deployments['LatentServe'].replica_states if app else {}; "
            "print('STATES', json.dumps({str(k): v for k, v in states.items()}))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        states = json.loads(_marked(result, "STATES") or "{}")
        return int(sum(v for k, v in states.items() if k.endswith("RUNNING")))

    def wait_for_nodes(self, count: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.alive_nodes() != count:
            assert time.monotonic() < deadline, f"the cluster never had {count} live nodes"
            time.sleep(1)


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    port = free_port()
    built = Cluster(f"127.0.0.1:{port}", tmp_path_factory.mktemp("ray-logs"))
    built.head = built.start_node("--head", f"--port={port}", "--include-dashboard=false")
    try:
        built.wait_for_nodes(1)
        built.add_worker()
        yield built
    finally:
        for node in [*built.workers, built.head]:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        time.sleep(3)
        for node in [*built.workers, built.head]:
            node.kill()
