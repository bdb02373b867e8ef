"""Log lines are written in batches, but none waits long and a warning goes out at once."""

from __future__ import annotations

import io
import logging
import time

from app.logs import BatchedStderr


def test_lines_are_batched_warnings_flush_and_none_waits_long() -> None:
    stream = io.StringIO()
    handler = BatchedStderr(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.batched")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        for i in range(3):
            logger.info("line %d", i)
        assert stream.getvalue() == ""  # not a write per line
        logger.warning("trouble")
        assert stream.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\nWARNING trouble\n"
        logger.info("later")
        deadline = time.monotonic() + 2
        while "later" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream.getvalue().endswith("INFO later\n")  # within MAX_DELAY_S, not forever
        for i in range(BatchedStderr.BATCH_LINES):
            logger.info("burst %d", i)
        assert f"burst {BatchedStderr.BATCH_LINES - 1}\n" in stream.getvalue()  # a full batch
    finally:
        logger.removeHandler(handler)
        handler.close()
