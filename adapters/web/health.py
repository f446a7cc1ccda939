"""What ``/healthz`` knows about the store: it answers reads *and* takes writes.

A read-only file or a full disk still answers reads, and a load balancer that only saw
reads would keep sending users to a process that cannot keep a single message. So the
check makes one small real write (``Store.probe_write``). Its outcome is kept for
``ttl`` seconds, and concurrent checks share one probe: ``/healthz`` stays cheap however
often it is polled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.errors import StoreError
from bot.store.base import StoreUpkeep

log = logging.getLogger(__name__)

#: Seconds a probe's outcome is reused.
HEALTH_TTL = 5.0
#: Seconds one probe (a read, then a write) may take.
HEALTH_TIMEOUT = 2.0


class StoreHealth:
    """The store's health, probed at most once per ``ttl`` seconds."""

    def __init__(
        self,
        store: StoreUpkeep,
        *,
        ttl: float = HEALTH_TTL,
        timeout: float = HEALTH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._problem: str | None = None
        #: Probes made (for tests: the cache must spare the store).
        self.probes = 0

    async def problem(self) -> str | None:
        """None when the store reads and writes; else what is wrong (``unreachable``,
        ``read-only``)."""
        async with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._ttl:
                self._problem = await self._probe()
                self._checked_at = self._clock()
            return self._problem

    async def _probe(self) -> str | None:
        self.probes += 1
        step = "unreachable"
        try:
            async with asyncio.timeout(self._timeout):
                await self._store.ping()
                step = "read-only"
                await self._store.probe_write()
        except (StoreError, OSError, TimeoutError) as exc:
            log.warning("health check: the store is %s: %s", step, exc)
            return step
        return None
