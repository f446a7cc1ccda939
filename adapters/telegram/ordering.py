"""``ChatOrderedProcessor``: updates run concurrently, but one person's messages in
one chat are answered in the order they were sent, and each update once.

PTB's own concurrent processor starts every update at once, so "hi" and "how are
you?" sent a moment apart could be answered in either order. Here each (chat, user)
pair has a FIFO lock; different people and chats do not wait for each other. A pair
with more than ``max_queued`` messages already waiting drops new ones (a flood must
not hold every concurrent slot, which PTB takes before this processor sees the update).

Telegram delivers an update again when it did not see our answer to the webhook POST
(a timeout, a connection reset): the same ``update_id`` arrives twice. The processor
remembers the last ``remember_updates`` ids it was given and drops a repeat, so a
message is stored and answered once. The memory is per process; in webhook mode the
store's inbox (:mod:`bot.inbox`) also records every update id with a conditional write,
so a redelivery that reaches another worker is recognised there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from adapters.telegram.albums import AlbumCollector

log = logging.getLogger(__name__)

OrderKey = tuple[int, int]
#: Telegram keeps an unanswered update for up to 24 hours but retries it within
#: minutes; a few thousand ids cover far more than that at any realistic rate.
REMEMBERED_UPDATES = 4096


def order_key(update: object) -> OrderKey | None:
    """``(chat id, user id)`` of an update, or None when it has no such pair."""
    if not isinstance(update, Update):
        return None
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return None
    key = (chat.id, user.id)
    # A forged update may carry any JSON value as an id; only ints make a key.
    return key if all(type(part) is int for part in key) else None


class RecentUpdateIds:
    """The last ``capacity`` update ids seen, to recognise a redelivery."""

    def __init__(self, capacity: int = REMEMBERED_UPDATES):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()

    def first_time(self, update_id: int) -> bool:
        """Whether ``update_id`` is new (it is remembered from now on)."""
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Concurrent across (chat, user) pairs, in arrival order within one; an update
    id seen recently is not processed again."""

    def __init__(
        self,
        max_concurrent_updates: int,
        *,
        max_queued: int,
        remember_updates: int = REMEMBERED_UPDATES,
        albums: AlbumCollector | None = None,
    ):
        super().__init__(max_concurrent_updates)
        #: Told of every update as it comes in, before it waits for its turn.
        self._albums = albums
        self._max_queued = max_queued
        self._locks: dict[OrderKey, tuple[asyncio.Lock, int]] = {}
        self._recent = RecentUpdateIds(remember_updates)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if self._is_repeat(update):
            log.info("telegram update %s was delivered again; ignored", _update_id(update))
            _discard(coroutine)
            return
        if self._albums is not None:
            self._albums.arrived(update)
        key = order_key(update)
        if key is None:
            await coroutine
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        if users > self._max_queued:
            log.warning("a Telegram chat member is flooding: an update was dropped")
            _discard(coroutine)
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

    def _is_repeat(self, update: object) -> bool:
        update_id = _update_id(update)
        return update_id is not None and not self._recent.first_time(update_id)

    async def initialize(self) -> None:
        """Nothing to open: the locks are made on demand."""

    async def shutdown(self) -> None:
        """Nothing to close: PTB waits for the updates in progress before this."""

    def __len__(self) -> int:
        return len(self._locks)


def _update_id(update: object) -> int | None:
    if isinstance(update, Update) and type(update.update_id) is int:
        return update.update_id
    return None


def _discard(coroutine: Awaitable[Any]) -> None:
    """Close a coroutine that will not run (so Python does not warn it was never awaited)."""
    if isinstance(coroutine, Coroutine):
        coroutine.close()
