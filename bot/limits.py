"""Token buckets per key (rate limits), and locks per key (serialisation)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: up to ``burst`` at once, refilled at ``per_second``.

    Memory stays bounded at ``max_keys`` buckets, and cheaply: buckets are kept in
    order of last use, so making room looks only at the least recently used one. A
    bucket that has refilled completely carries no information and goes first; when
    more than ``max_keys`` keys are all busy at once (a flood of fresh identities), the
    least recently used bucket is dropped anyway: that key starts again with a full
    bucket, which costs a flood nothing it did not already have with fresh keys.
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
        self._rate = per_second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def try_acquire(self, key: Hashable, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from the key's bucket; False when there are not enough."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return True
        return False

    def retry_after(self, key: Hashable, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be available for the key."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        now = self._clock()
        tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        return max(0.0, (cost - tokens) / self._rate)

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        """Drop refilled buckets from the old end; then, if still full, the oldest one."""
        full_after = self._burst / self._rate
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.updated < full_after:
                break
            buckets.popitem(last=False)
        while len(buckets) >= self._max_keys:
            buckets.popitem(last=False)


class KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds or waits for
    it, so idle conversations cost no memory.

    Every message takes two of these, so they are cheaper than a dict of
    :class:`asyncio.Lock`: a free key is taken with no future and no suspension, and a
    released key is handed straight to its oldest waiter (first come, first served: the
    messages of one conversation keep their order), which then owns it even before it
    runs. Use ``async with locks.lock(key):``, or :meth:`acquire` and :meth:`release`.
    """

    def __init__(self) -> None:
        # a key held: its waiters, oldest first (empty when nobody waits)
        self._held: dict[Hashable, deque[asyncio.Future[None]]] = {}

    def lock(self, key: Hashable) -> _KeyLock:
        """Hold the key's lock for the ``async with`` block, after whoever holds it."""
        return _KeyLock(self, key)

    async def acquire(self, key: Hashable) -> None:
        """Wait until the key is ours. A caller cancelled while waiting does not get it
        (and, if it was just handed the key, passes it on)."""
        waiters = self._held.get(key)
        if waiters is None:
            self._held[key] = deque()
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(handed)
        try:
            await handed
        except BaseException:
            if handed.done() and not handed.cancelled():
                self.release(key)  # handed over, then cancelled before it ran
            else:
                waiters.remove(handed)
            raise

    def release(self, key: Hashable) -> None:
        """Hand the key to its oldest waiter still waiting, or free it."""
        waiters = self._held[key]
        while waiters:
            handed = waiters.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        del self._held[key]

    def __len__(self) -> int:
        return len(self._held)


class HeldLocks:
    """Keys of :class:`KeyedLocks` taken one after another and released together, the
    last taken first (what an ``AsyncExitStack`` of ``lock()`` would do, for less)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[tuple[KeyedLocks, Hashable]] = []

    async def take(self, locks: KeyedLocks, key: Hashable) -> None:
        """Wait for ``key`` of ``locks`` and hold it until :meth:`release`."""
        await locks.acquire(key)
        self._held.append((locks, key))

    def release(self) -> None:
        """Release every key held, the last taken first."""
        while self._held:
            locks, key = self._held.pop()
            locks.release(key)


class _KeyLock:
    """``async with`` for one key of :class:`KeyedLocks`."""

    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLocks, key: Hashable) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks.acquire(self._key)

    async def __aexit__(self, *exc_info: object) -> None:
        self._locks.release(self._key)
