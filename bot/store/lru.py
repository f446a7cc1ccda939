"""``Lru``: the one bounded, least-recently-used memory the stores keep in process.

Both the SQLite store (recent turns, :mod:`bot.store.sqlite.recent`) and the DynamoDB
store (heads, turns and hints, :mod:`bot.store.dynamo.recent`) remember a bounded number
of things and forget the least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``capacity`` (with a
    capacity of 0 or less it keeps nothing)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._capacity <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def drop_where(self, doomed: Callable[[K, V], bool]) -> None:
        for key in [k for k, v in self._entries.items() if doomed(k, v)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
