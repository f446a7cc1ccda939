"""``ChatOrderedProcessor``: updates run concurrently, but one person's messages in
one chat are answered in the order they were sent.

PTB's own concurrent processor starts every update at once, so "hi" and "how are
you?" sent a moment apart could be answered in either order. Here each (chat, user)
pair has a FIFO lock; different people and chats do not wait for each other. A pair
with more than ``max_queued`` messages already waiting drops new ones (a flood must
not hold every concurrent slot, which PTB takes before this processor sees the update).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

OrderKey = tuple[int, int]


def order_key(update: object) -> OrderKey | None:
    """``(chat id, user id)`` of an update, or None when it has no such pair."""
    if not isinstance(update, Update):
        return None
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return None
    return chat.id, user.id


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Concurrent across (chat, user) pairs, in arrival order within one."""

    def __init__(self, max_concurrent_updates: int, *, max_queued: int):
        super().__init__(max_concurrent_updates)
        self._max_queued = max_queued
        self._locks: dict[OrderKey, tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = order_key(update)
        if key is None:
            await coroutine
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        if users > self._max_queued:
            log.warning("a Telegram chat member is flooding: an update was dropped")
            if isinstance(coroutine, Coroutine):
                coroutine.close()
            return
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await coroutine
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def initialize(self) -> None:
        """Nothing to open: the locks are made on demand."""

    async def shutdown(self) -> None:
        """Nothing to close: PTB waits for the updates in progress before this."""

    def __len__(self) -> int:
        return len(self._locks)
