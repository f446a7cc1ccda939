"""Replies that outlive their request.

A chat reply is produced in a task the app owns, not in the request handler: when the
browser goes away mid-reply (and the server cancels the handler, as aiohttp can), the
reply still completes and is stored, so it is in the history next time. The tasks are
kept in a set and awaited when the app shuts down: none is left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Coroutine
from contextlib import aclosing
from typing import Any

from bot.engine import Engine
from bot.messages import Incoming, ReplyDone, ReplyEvent

log = logging.getLogger(__name__)

#: What the producer puts on a reply's queue: events, a failure, and None at the end.
_Item = ReplyEvent | BaseException | None


class ReplyTasks:
    """Runs engine replies in owned tasks and streams their events to the handler."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stream(self, engine: Engine, incoming: Incoming) -> AsyncGenerator[ReplyEvent, None]:
        """The reply's events; raises what the engine raised. Leaving early (or being
        cancelled) leaves the reply running to completion in the background."""
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._start(self._produce(engine, incoming, queue))
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def complete(self, engine: Engine, incoming: Incoming) -> ReplyDone | None:
        """Produce the whole reply (shielded from the caller's cancellation); its end."""
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        await asyncio.shield(self._start(self._produce(engine, incoming, queue)))
        done = None
        while not queue.empty():
            if isinstance(item := queue.get_nowait(), ReplyDone):
                done = item
        return done

    async def _produce(
        self, engine: Engine, incoming: Incoming, queue: asyncio.Queue[_Item]
    ) -> None:
        try:
            async with aclosing(engine.handle(incoming)) as events:
                async for event in events:
                    queue.put_nowait(event)
        except Exception as exc:
            log.exception("a web chat reply failed")
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(None)

    async def close(self) -> None:
        """Wait for the replies still running (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
