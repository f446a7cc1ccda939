"""A platform's durable inbox: acknowledge a request only once it is stored.

Telegram never resends an update its webhook answered with 200, and Discord never
resends an interaction it got a deferred response to. So a webhook first puts the event
in the store (``Store.claim_event`` with its payload, a conditional write: of several
workers given the same event, exactly one gets it), then acknowledges, then answers;
the answered event leaves the inbox. An event whose worker died (SIGKILL, a lost
machine) stays there, held by that worker until its hold lapses; every worker sweeps
the inbox at start and then every ``sweep`` seconds and answers what it takes. An
event's id stays recorded for ``keep`` seconds, so a redelivery within that time is
recognised (and not answered twice) on any worker.

The user's turn is stored with the time the event arrived (``Incoming.sent_at``), so
an event answered again after a crash finds its turn already stored and is not
stored twice (see :meth:`bot.engine.Engine.handle`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.errors import StoreError
from bot.store.base import EventStore, InboxEntry

log = logging.getLogger(__name__)

#: Entries taken in one sweep.
SWEEP_BATCH = 100
#: The largest payload kept in the inbox (a DynamoDB item holds at most 400 KB). A larger
#: event (no real Telegram update is) is only recorded: answered once, not kept durable.
MAX_PAYLOAD_BYTES = 300_000


class Inbox:
    """The inbox of one event ``source`` (``"telegram"``, ``"discord"``) on a store."""

    def __init__(
        self,
        store: EventStore,
        source: str,
        *,
        hold: float,
        sweep: float,
        keep: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.source = source
        self.hold = hold
        self.sweep = sweep
        self.keep = keep
        self._clock = clock
        self._received: dict[str, float] = {}

    async def accept(self, event_id: str, payload: str) -> bool:
        """Store a new event before it is acknowledged; False when the id is recorded
        already (a redelivery, or another worker has it). Raises StoreError when the
        store cannot keep it: then do not acknowledge."""
        now = self._clock()
        if len(payload.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
            log.warning("%s event %s is too large for the inbox", self.source, event_id)
            kept = None
        else:
            kept = payload
        fresh = await self._store.claim_event(
            self.source, event_id, now, now + self.keep, payload=kept, hold_until=now + self.hold
        )
        if fresh:
            self._received[event_id] = now
        return fresh

    async def record(self, event_id: str) -> bool:
        """Record an event id only (no payload): False when it was recorded before."""
        now = self._clock()
        return await self._store.claim_event(self.source, event_id, now, now + self.keep)

    def received_at(self, event_id: str) -> float | None:
        """When an event in this worker's hands was first stored."""
        return self._received.get(event_id)

    async def finish(self, event_id: str) -> None:
        """The event is answered (or answering it failed for good): out of the inbox."""
        self._received.pop(event_id, None)
        try:
            await self._store.finish_inbox(self.source, event_id)
        except StoreError as exc:  # it is answered again after its hold: logged
            log.warning("%s event left in the inbox (%s)", self.source, exc)

    async def take_lapsed(self) -> list[InboxEntry]:
        """Entries whose worker went quiet, now held by this one."""
        now = self._clock()
        taken = await self._store.take_inbox(self.source, now, now + self.hold, SWEEP_BATCH)
        for entry in taken:
            self._received[entry.event_id] = entry.received_at
        return taken

    async def run(self, answer: Callable[[InboxEntry], Awaitable[None]]) -> None:
        """Sweep now and every ``sweep`` seconds until cancelled, passing each lapsed
        entry to ``answer``."""
        while True:
            try:
                for entry in await self.take_lapsed():
                    log.info("%s event %s taken from the inbox", self.source, entry.event_id)
                    await answer(entry)
            except StoreError as exc:
                log.warning("sweeping the %s inbox failed: %s", self.source, exc)
            except Exception:  # a bug must not end the sweeping for good
                log.exception("sweeping the %s inbox failed", self.source)
            await asyncio.sleep(self.sweep)
