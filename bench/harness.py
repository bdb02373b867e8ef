"""What every benchmark here shares: request bodies, wrk, server processes, the machine.

Servers run as process groups on loopback, their output in a log file; peak RSS is read from
/proc (VmHWM) for the whole process tree when they stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOUNDARY = "latentservebench"
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_pngs(model: str, count: int) -> list[bytes]:
    """Real test images where the dataset is installed, else a fixed synthetic stroke."""
    from training.datasets import DatasetError, load_dataset

    try:
        images = load_dataset(model).x_test[:count]
    except DatasetError:
        images = np.zeros((count, 28, 28), dtype=np.uint8)
        images[:, 6:22, 12:16] = 255
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def multipart(pngs: list[bytes], field: str = "file") -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n"
        for i, png in enumerate(pngs)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def json_pixels(model: str) -> bytes:
    """One test image as the JSON body form: {"instances": [28x28 array of 0-255]}."""
    from training.datasets import DatasetError, load_dataset

    try:
        image = load_dataset(model).x_test[0]
    except DatasetError:
        image = np.zeros((28, 28), dtype=np.uint8)
        image[6:22, 12:16] = 255
    return json.dumps({"instances": [image.tolist()]}).encode()


def wrk_script(workdir: Path, body: bytes | None, headers: dict[str, str] | None = None) -> Path:
    """A wrk script POSTing `body` (multipart unless headers say otherwise), or a plain GET."""
    if body is None:
        script = workdir / "get.lua"
        script.write_text("")
        return script
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
    key = hashlib.sha256(body + repr(sorted(headers.items())).encode()).hexdigest()[:12]
    body_file = workdir / f"body-{key}.bin"
    body_file.write_bytes(body)
    script = workdir / f"post-{key}.lua"
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        "wrk.body = f:read('*a')\nf:close()\n"
        'wrk.method = "POST"\n'
        + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in headers.items())
    )
    return script


def v2_request(png: bytes) -> tuple[bytes, dict[str, str]]:
    """One PNG as tritonclient sends it: a BYTES input in binary, `probabilities` asked for in
    binary (tritonclient's defaults), behind Inference-Header-Content-Length."""
    header = json.dumps(
        {
            "inputs": [
                {"name": "images", "shape": [1], "datatype": "BYTES",
                 "parameters": {"binary_data_size": len(png) + 4}}
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()  # fmt: skip
    body = header + len(png).to_bytes(4, "little") + png
    return body, {"Content-Type": "application/octet-stream",
                  "Inference-Header-Content-Length": str(len(header))}  # fmt: skip


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def machine_busy_ticks() -> tuple[int, int]:
    """Busy and total clock ticks over every core since boot (/proc/stat's first line)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, Any]:
    """wrk's figures, with the cores wrk itself used (`client_cores`) and the cores busy on
    the whole machine (`machine_cores`) over the run: whether a server short of the
    machine's cores was starved by the load generator or left them idle."""
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    before, (busy, total), start = _children_cpu(), machine_busy_ticks(), time.perf_counter()
    output = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    client_cores = (_children_cpu() - before) / elapsed
    busy_after, total_after = machine_busy_ticks()
    machine_cores = (busy_after - busy) / max(total_after - total, 1) * (os.cpu_count() or 1)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, flags=re.M))
    if len(latency) < 2:  # no request completed: report it rather than crash the whole run
        latency = {"50": "0us", "99": "0us"}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
        "client_cores": client_cores,
        "machine_cores": machine_cores,
    }


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB RAM, Python {python}"


def uvicorn_command(
    target: str, factory: bool, workers: int = 1, access_log: bool = False
) -> list[str]:
    """uvicorn on loopback (`--port` added by Server); our own service writes its access line
    itself, so uvicorn's is off unless asked for (a peer's, as uvicorn ships it)."""
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--log-level"]
    cmd += ["info" if access_log else "warning"]
    cmd += [] if access_log else ["--no-access-log"]
    cmd += ["--factory"] if factory else []
    cmd += ["--workers", str(workers)] if workers > 1 else []
    return cmd


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()  # the name, in (), may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def granian_command(target: str) -> list[str]:
    """The same ASGI app factory under granian (a dev dependency), one worker, HTTP/1 on
    uvloop as uvicorn serves it, its access log off as ours is (the app writes its own)."""
    granian = str(Path(sys.executable).parent / "granian")
    return [granian, "--interface", "asgi", "--factory", target, "--host", "127.0.0.1",
            "--workers", "1", "--http", "1", "--loop", "uvloop", "--no-ws",
            "--log-level", "warning"]  # fmt: skip


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


class Server:
    """A server process group on a free loopback port, ready when `ready_path` answers 2xx
    `ready_in_a_row` times in a row on fresh connections (workers sharing a socket must all
    answer). Output goes to `log`; peak RSS of the whole tree is kept when it stops."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        ready_path: str,
        log: Path,
        cwd: Path = ROOT,
        port_flag: str = "--port",
        ready_in_a_row: int = 10,
        port: int | None = None,
    ) -> None:
        """`port_flag` "": the command sets the port itself (then pass `port`)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.peak_mb = self.total_peak_mb = 0.0
        self.process_count = 0
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        port_args = [port_flag, str(self.port)] if port_flag else []
        self.process = subprocess.Popen(
            [*cmd, *port_args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole, workers included
        )
        try:
            self._wait_ready(ready_path, ready_in_a_row, log)
        except BaseException:
            self.stop()
            raise

    @classmethod
    def uvicorn(
        cls, target: str, env: dict[str, str], factory: bool, log: Path, workers: int = 1,
        root: Path = ROOT,
    ) -> Server:  # fmt: skip
        """`root`: the checkout whose code serves (another one for A/B runs, bench/ab.py)."""
        return cls(
            uvicorn_command(target, factory, workers),
            env,
            "/readyz" if factory else "/",
            log,
            cwd=root,
            ready_in_a_row=10 * workers,
        )

    @classmethod
    def granian(cls, target: str, env: dict[str, str], log: Path) -> Server:
        return cls(granian_command(target), env, "/readyz", log)

    def _wait_ready(self, ready_path: str, in_a_row_needed: int, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        in_a_row = 0
        while in_a_row < in_a_row_needed:
            try:
                ok = httpx.get(self.url + ready_path, timeout=2).is_success
            except httpx.TransportError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if ok:
                continue
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} did not become ready; see {log}")
            time.sleep(0.2)

    def connections_per_process(self) -> list[int]:
        """Established client connections each process of the tree holds on the server's port,
        most first (from /proc: which worker accepted how many of wrk's connections)."""
        port = f":{self.port:04X}"
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(port) and fields[3] == "01":  # local port, ESTABLISHED
                    inodes.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fds = Path(f"/proc/{pid}/fd").iterdir()
                held = sum(1 for fd in fds if _readlink(fd) in inodes)
                if held:
                    counts.append(held)
        return sorted(counts, reverse=True)

    def pids(self) -> list[int]:
        """The server process and all its descendants."""
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                queue += [int(child) for child in task.read_text().split()]
        return found

    def cpu_seconds(self) -> float:
        """CPU time (user + system, every thread) the server's processes have used so far."""
        total = 0
        for pid in self.pids():
            try:
                total += stat_cpu_seconds(Path(f"/proc/{pid}/stat"))
            except FileNotFoundError:
                continue
        return total

    def _peaks_mb(self) -> list[float]:
        peaks = []
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            if match := re.search(r"VmHWM:\s+(\d+) kB", status):
                peaks.append(int(match.group(1)) / 1024)
        return peaks or [0.0]

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after 60 s; keeps the peak RSS: the largest process's
        (`peak_mb`, per worker) and the sum over the tree (`total_peak_mb`)."""
        if self.process.poll() is None:
            peaks = self._peaks_mb()
            self.peak_mb, self.total_peak_mb = max(peaks), sum(peaks)
            self.process_count = len(peaks)
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
            deadline = time.monotonic() + 10  # workers may outlive their parent briefly
            while _group_alive(self.process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(self.process.pid):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
