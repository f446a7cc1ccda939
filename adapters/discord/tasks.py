"""Keeping track of replies in flight, so stopping the adapter lets them finish.

discord.py runs each event handler in a task of its own, and the HTTP interactions
endpoint answers Discord first and replies afterwards: both kinds of work are
registered here, and :meth:`TaskTracker.drain` waits for them (then cancels the rest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)


class TaskTracker:
    """The set of tasks doing a reply right now."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        """Whether :meth:`drain` has begun: no new work is taken."""
        return self._closed

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the current task as in flight until the block ends."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    def spawn(self, coro: Coroutine[Any, Any, object], name: str) -> asyncio.Task[object]:
        """Run ``coro`` in a task that :meth:`drain` waits for."""
        if self._closed:
            coro.close()
            raise RuntimeError("the Discord adapter is stopping")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("discord: %s failed", task.get_name(), exc_info=exc)

    async def drain(self, grace: float) -> None:
        """Refuse new work, wait up to ``grace`` seconds for the tasks in flight,
        then cancel those still running."""
        self._closed = True
        current = asyncio.current_task()
        pending = {task for task in self._tasks if task is not current}
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            log.warning("discord: cancelled %d replies still running at shutdown", len(still))
            await asyncio.wait(still)
