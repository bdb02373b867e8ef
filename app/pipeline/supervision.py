"""Supervised background tasks: a failure is logged, reported, and the task restarts.

Every long-running task of the service (batch workers, the repository watcher) runs under a
`Supervised`. A task that ends by returning is done; one that raises, or is cancelled by
anything but `stop()`, has failed: the failure is logged with its traceback, `on_failure`
fails whoever was waiting on it, and the task is started again after a delay that doubles
while failures come in quick succession (so a task that keeps crashing cannot spin the loop).
Everything here runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

FIRST_RESTART_DELAY_S = 0.05
MAX_RESTART_DELAY_S = 5.0
HEALTHY_RUN_S = 10.0
"""A task that ran this long before failing restarts after the first delay again."""


class Supervised:
    def __init__(
        self,
        name: str,
        start: Callable[[], Coroutine[Any, Any, None]],
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._on_failure = on_failure or (lambda error: None)
        self._task: asyncio.Task[None] | None = None
        self._restart: asyncio.TimerHandle | None = None
        self._delay_s = FIRST_RESTART_DELAY_S
        self._started_at = 0.0
        self._stopping = False
        self.failures = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The current run of the task (None before the first start)."""
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task unless it is running already (idempotent)."""
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        if self.running or self._stopping:
            return
        self._started_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._start(), name=self.name)
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task is not self._task:
            return
        if task.cancelled():
            error: BaseException = asyncio.CancelledError(f"{self.name} was cancelled")
        elif (raised := task.exception()) is not None:
            error = raised
        else:
            return  # finished its work: nothing to restart
        self.failures += 1
        if time.monotonic() - self._started_at >= HEALTHY_RUN_S:
            self._delay_s = FIRST_RESTART_DELAY_S
        logger.error(
            "%s failed (%s: %s); restarting in %.2f s",
            self.name,
            type(error).__name__,
            error,
            self._delay_s,
            exc_info=error,
        )
        try:
            self._on_failure(error)
        finally:
            loop = task.get_loop()
            self._restart = loop.call_later(self._delay_s, self.start)
            self._delay_s = min(self._delay_s * 2, MAX_RESTART_DELAY_S)

    async def stop(self) -> None:
        """Cancel the task for good and wait for it to end."""
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
