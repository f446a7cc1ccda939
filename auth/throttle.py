"""Login throttling: failures per key in a sliding window, in memory.

Keys are strings such as ``account:<casefolded name>`` and ``address:<ip>``; a login
is refused while any of its keys has ``limit`` failures in the last ``window`` seconds.
Names are throttled whether or not the account exists, so the throttle says nothing
about which names are real.

An attempt *reserves* a slot on each key before the password is checked, and settles
it afterwards (a failure is recorded, a success is forgotten). Without the reservation,
a burst of concurrent guesses would all pass the check before the first of them had
failed. (``bot.limits.RateLimiter`` cannot give a token back, so it does not fit.)

The state is per process: with several web workers each enforces its own limit, which
still bounds guessing to ``limit`` x workers per window.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

from auth.errors import LoginThrottled


@dataclass(slots=True)
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    pending: int = 0


#: Failed logins allowed per window: per account name (whatever the address: slow
#: guessing from a botnet) and per client address (whatever the names: one machine
#: trying many accounts). Applied by :class:`~auth.service.AccountService`.
#: A browser holding the account's device token (``auth.devices``) is limited per
#: device instead, so that strangers' failures never lock the owner out.
LOGIN_LIMITS = MappingProxyType({"account": 10, "address": 30, "device": 10})
LOGIN_WINDOW = 15 * 60.0


class LoginThrottle:
    """Refuses logins for keys with too many recent failures."""

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = LOGIN_WINDOW,
        limits: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
        """``limits`` overrides ``limit`` per key kind (the part before ``:``)."""
        self._limit = limit
        self._limits = dict(limits or {})
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    @property
    def window(self) -> float:
        """Seconds a failure counts for."""
        return self._window

    def limit_for(self, key: str) -> int:
        return self._limits.get(key.partition(":")[0], self._limit)

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again; 0 when they may now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                continue
            self._expire(entry, now)
            limit = self.limit_for(key)
            if len(entry.failures) + entry.pending < limit:
                continue
            if len(entry.failures) >= limit:
                oldest_that_matters = entry.failures[len(entry.failures) - limit]
                wait = max(wait, oldest_that_matters + self._window - now)
            else:  # blocked by attempts still in flight: they settle within a moment
                wait = max(wait, 1.0)
        return wait

    @contextmanager
    def attempt(self, keys: Iterable[str]) -> Iterator[Callable[[], None]]:
        """Reserve an attempt on every key, or raise LoginThrottled.

        Yields ``fail``: call it when the attempt failed. Leaving the block without
        calling it (success, or an error that says nothing about the password) releases
        the reservation without counting a failure.
        """
        keys = list(dict.fromkeys(keys))
        wait = self.retry_after(keys)
        if wait > 0:
            raise LoginThrottled(math.ceil(wait))
        entries = {key: self._entry(key) for key in keys}
        for entry in entries.values():
            entry.pending += 1
        failed = False

        def fail() -> None:
            nonlocal failed
            failed = True

        try:
            yield fail
        finally:
            now = self._clock()
            for key, entry in entries.items():
                entry.pending -= 1
                if failed:
                    entry.failures.append(now)
                elif not entry.pending and not entry.failures:
                    self._entries.pop(key, None)  # nothing to remember

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        if entry is None:
            return 0
        self._expire(entry, self._clock())
        return len(entry.failures)

    def _entry(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                self._sweep()
            entry = self._entries[key] = _Entry()
        return entry

    def _expire(self, entry: _Entry, now: float) -> None:
        while entry.failures and entry.failures[0] <= now - self._window:
            entry.failures.popleft()

    def _sweep(self) -> None:
        """Drop keys that carry no information any more; if that is not enough, the
        oldest keys (memory must stay bounded even under a flood of new addresses)."""
        now = self._clock()
        for key in list(self._entries):
            entry = self._entries[key]
            self._expire(entry, now)
            if not entry.failures and not entry.pending:
                del self._entries[key]
        excess = len(self._entries) - self._max_keys + 1
        for key in list(self._entries)[: max(0, excess)]:
            if not self._entries[key].pending:
                del self._entries[key]
