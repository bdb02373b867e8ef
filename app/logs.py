"""Logging set-up for the entry point: plain text or one JSON object per line.

Lines are formatted where they are logged and written to stderr in batches: when 64 have
gathered, when a warning or worse comes, and otherwise at most 0.1 s after they were logged
(a flusher thread that wakes ten times a second). A write per line cost 6-9 % of the no-model
floor's throughput, and handing each record to a writer thread (logging's QueueListener) a
sixth, in GIL hand-offs (docs/benchmarks.md); the access line stays on. The price: a process
killed with SIGKILL loses at most its last 0.1 s of lines.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, plus a record's structured `fields` (access lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class BatchedStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler that writes lines in batches (see the module's docstring)."""

    BATCH_LINES = 64
    MAX_DELAY_S = 0.1

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)  # None: sys.stderr
        self._lines: list[str] = []
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            if len(self._lines) >= self.BATCH_LINES or record.levelno >= logging.WARNING:
                self._write_out()

    def _write_out(self) -> None:
        """Caller holds the lock."""
        if self._lines:
            self.stream.write("".join(self._lines))
            self.stream.flush()
            self._lines.clear()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_out()

    def _flush_often(self) -> None:
        while not self._stop.wait(self.MAX_DELAY_S):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


_handler: BatchedStderr | None = None


def configure_logging(level: str, as_json: bool) -> None:
    global _handler
    if _handler is not None:  # configured again (tests, a second app in one process)
        _handler.close()
    _handler = BatchedStderr()
    _handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    # Fields no format here uses, which every LogRecord would otherwise look up.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=level.upper(), handlers=[_handler], force=True)


@atexit.register
def _flush_at_exit() -> None:
    if _handler is not None:
        _handler.flush()
