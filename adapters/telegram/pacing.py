"""``ChatPacer``: spaces the writes to each chat, shared by every reply in that chat.

Telegram allows about one message a second in a chat and twenty a minute in a group,
edits included in practice. Writes to one chat take turns: a turn begins once the
previous write to the chat has been *answered* and the interval has passed since, so
the gap holds where Telegram measures it (at its end, whatever the network did to the
requests in between), two replies streaming at once in one group share the group's
budget instead of doubling it, and the pieces of a long reply cannot overtake each
other. A 429's ``retry_after`` pushes the chat's next turn back for everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: Idle chats are swept when the table grows past this size (then twice its live size).
_SWEEP_AT = 1024


@dataclass(slots=True)
class _Chat:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next: float = 0.0  # no write before this (monotonic clock)
    users: int = 0  # writers holding or waiting for the turn


class ChatPacer:
    """Per-chat turns ``interval`` seconds apart. Memory is bounded by the chats
    written to within the last interval (idle entries are swept as new ones come)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._chats: dict[Hashable, _Chat] = {}
        self._sweep_at = _SWEEP_AT

    @asynccontextmanager
    async def turn(self, chat: Hashable, interval: float) -> AsyncIterator[None]:
        """Hold the chat's turn for one write: waits for the write before it to be
        answered and for its slot; the next slot is ``interval`` after this one ends."""
        entry = self._entry(chat)
        entry.users += 1
        try:
            async with entry.lock:
                delay = entry.next - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    yield
                finally:
                    entry.next = max(entry.next, self._clock() + interval)
        finally:
            entry.users -= 1

    async def ready(self, chat: Hashable) -> None:
        """Wait until the chat's next slot has come, without taking it: a stream waits
        here, then writes its freshest text."""
        entry = self._chats.get(chat)
        delay = entry.next - self._clock() if entry else 0.0
        if delay > 0:
            await asyncio.sleep(delay)

    def hold(self, chat: Hashable, seconds: float) -> None:
        """Telegram said to wait ``seconds`` (429): no write to the chat before then."""
        entry = self._entry(chat)
        entry.next = max(entry.next, self._clock() + seconds)

    def _entry(self, chat: Hashable) -> _Chat:
        entry = self._chats.get(chat)
        if entry is None:
            if len(self._chats) >= self._sweep_at:
                self._sweep()
            entry = self._chats[chat] = _Chat()
        return entry

    def _sweep(self) -> None:
        now = self._clock()
        idle = [k for k, c in self._chats.items() if c.users == 0 and c.next <= now]
        for chat in idle:
            del self._chats[chat]
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._chats))

    def __len__(self) -> int:
        return len(self._chats)
