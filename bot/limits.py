"""Token buckets per key (rate limits), and locks per key (serialisation)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
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
    """One asyncio lock per key, created on demand and dropped when nobody holds or
    waits for it, so idle conversations cost no memory."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the key's lock for the ``async with`` block, after whoever holds it."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
