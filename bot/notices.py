"""Telling an account's owner what happened to the account: an identity linked or
unlinked.

Each notice is stored for the web account page (:meth:`AccountNotices.recent`) and sent
as a private message to every identity linked to the account, except the one that
caused it (it has its answer already). The core knows no platform: each adapter that
can write to a person privately registers a :data:`Send` for its platform while it
runs. Sending happens in tasks of its own, so a slow platform never holds up the answer
to the command; they are kept in a set and awaited (or, past ``grace``, cancelled) on
:meth:`AccountNotices.aclose`. A message that cannot be delivered is only logged: the
stored notice is the record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.errors import StoreError
from bot.messages import Identity
from bot.store.base import LinkingStore, Notice

log = logging.getLogger(__name__)

#: Writes ``text`` to ``identity`` in a private chat on the adapter's platform.
Send = Callable[[Identity, str], Awaitable[None]]
#: How long one private message may take before it is given up.
SEND_TIMEOUT = 30.0


class AccountNotices:
    """Stores notices for accounts and sends them to the accounts' linked identities."""

    def __init__(
        self,
        store: LinkingStore,
        *,
        keep_seconds: float = 90 * 86400.0,
        clock: Callable[[], float] = time.time,
        send_timeout: float = SEND_TIMEOUT,
    ):
        self._store = store
        self._keep = keep_seconds
        self._clock = clock
        self._send_timeout = send_timeout
        self._senders: dict[str, Send] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, platform: str, send: Send) -> None:
        """Deliver this platform's notices with ``send`` (an adapter, while it runs)."""
        self._senders[platform] = send

    def unregister(self, platform: str) -> None:
        self._senders.pop(platform, None)

    async def tell(self, account_id: str, text: str, *, skip: Identity | None = None) -> None:
        """Store ``text`` for the account's page and send it to its linked identities
        (but ``skip``). A store failure is logged, not raised: what the notice is about
        has happened already."""
        now = self._clock()
        try:
            await self._store.add_notice(account_id, text, now, now + self._keep)
            linked = await self._store.list_identities(account_id)
        except StoreError as exc:
            log.warning("could not keep or send a notice for an account: %s", exc)
            return
        for link in linked:
            send = self._senders.get(link.platform)
            if send is None or link.identity == skip:
                continue
            task = asyncio.create_task(
                self._deliver(send, link.identity, text), name=f"notice-{link.platform}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, send: Send, identity: Identity, text: str) -> None:
        try:
            async with asyncio.timeout(self._send_timeout):
                await send(identity, text)
        except Exception as exc:  # the edge of a task of its own: nothing above would see it
            log.warning("could not send a notice on %s: %s", identity.platform, type(exc).__name__)

    async def recent(self, account_id: str, limit: int = 20) -> list[Notice]:
        """The account's newest notices, newest first."""
        return await self._store.list_notices(account_id, self._clock(), limit)

    async def settle(self) -> None:
        """Wait for the notices being sent now."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self, grace: float = 5.0) -> None:
        """Let the notices being sent finish (cancelled after ``grace`` seconds)."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
