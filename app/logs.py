"""Logging set-up for the entry point: plain text or one JSON object per line.

Records are formatted and written by a listener thread (logging.handlers.QueueListener): the
request path only makes the record and queues it. Formatting the time stamp and writing the
line to stderr on the event loop cost 6-9 % of the no-model floor's throughput
(docs/benchmarks.md); the access line stays on.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
from typing import Any

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


class _Queued(logging.handlers.QueueHandler):
    """Queues the record itself, its message resolved (args may change after the call) but
    unformatted, so the listener's formatter still sees levels, fields and exc_info."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        return record


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str, as_json: bool) -> None:
    global _listener
    if _listener is not None:  # configured again (tests, a second app in one process)
        _listener.stop()
    stream = logging.StreamHandler()
    stream.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, stream)
    _listener.start()
    logging.basicConfig(level=level.upper(), handlers=[_Queued(records)], force=True)


@atexit.register
def _flush_at_exit() -> None:
    """Write out what is still queued (the listener's thread stops after the last record)."""
    if _listener is not None:
        _listener.stop()
