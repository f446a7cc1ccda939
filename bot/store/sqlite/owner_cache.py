"""``OwnerCache``: who an identity speaks for, an owner's preferences and epoch, kept in
memory between messages.

Every message reads these three (resolve, then the epoch before its window, and the
epoch again in each append's transaction), and they seldom change: with the cache those
reads cost no statement. Used on the worker thread only, inside a batch's transaction:

* another process's commits are seen through ``PRAGMA data_version``, read once per
  batch that uses the cache, inside its transaction: when it differs from the version
  the entries were read at, everything is forgotten first. So a lookup is never older
  than the start of the batch it runs in, which starts after it was asked: a link,
  unlink, preference or /forget committed by another process before the call is seen;
* this process's own writes to identities, preferences, accounts and epochs (which
  ``data_version`` does not count) forget everything too (:meth:`changing`);
* a batch whose transaction fails forgets everything (what was read in it may not have
  lasted).

Bounded: at most ``capacity`` entries of each kind (:class:`~bot.store.lru.Lru`).
"""

from __future__ import annotations

import sqlite3  # used only inside functions run on aiosqlite's worker thread
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from bot.messages import Identity, OwnerId
from bot.store.base import LinkedIdentity
from bot.store.lru import Lru

P = ParamSpec("P")
T = TypeVar("T")


class OwnerCache:
    """Links, preferences and epochs of recently seen identities and owners (see the
    module doc)."""

    def __init__(self, capacity: int) -> None:
        # a link is kept wrapped in a tuple: "not linked" (None) is worth keeping too
        self.links: Lru[Identity, tuple[LinkedIdentity | None]] = Lru(capacity)
        self.preferences: Lru[OwnerId, dict[str, str]] = Lru(capacity)
        self.epochs: Lru[OwnerId, tuple[int, bool]] = Lru(capacity)  # (epoch, deleted)
        self._data_version: int | None = None
        self._checked = False  # whether data_version was read in the current batch

    def batch_started(self) -> None:
        """A new transaction: the next lookup reads ``data_version`` again."""
        self._checked = False

    def check(self, conn: sqlite3.Connection) -> None:
        """Forget everything when another connection committed since the entries were
        read (once per batch; call before any lookup)."""
        if self._checked:
            return
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version != self._data_version:
            self.clear()
            self._data_version = version
        self._checked = True

    def reset(self) -> None:
        """Forget everything, and the data version too (a new connection counts anew)."""
        self.clear()
        self._data_version = None

    def clear(self) -> None:
        self.links.clear()
        self.preferences.clear()
        self.epochs.clear()

    def changing(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T]
    ) -> Callable[Concatenate[sqlite3.Connection, P], T]:
        """``fn``, a write to identities, preferences, accounts or epochs, that forgets
        everything after it ran (even when it failed)."""

        def run(conn: sqlite3.Connection, /, *args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(conn, *args, **kwargs)
            finally:
                self.clear()

        return run
