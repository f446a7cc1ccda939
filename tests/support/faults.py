"""Fault-injecting implementations of our own interfaces, for reliability tests.

* :class:`FlakyStore` wraps any :class:`~bot.store.base.Store` and makes a share of its
  calls fail with :class:`~bot.errors.StoreUnavailable`: *before* the call (nothing
  happened) or *after* it (it happened, but the caller is told it failed: the ambiguous
  commit every network store has).
* :class:`FlakyBackend` wraps any :class:`~bot.backends.base.Backend` and makes a share
  of its replies fail with :class:`~bot.errors.BackendUnavailable` before any text or
  in the middle of the stream, or stall longer than the guard waits.

Both draw from :class:`FaultDice`: seeded, with one random stream per *subject* (a
conversation, an identity, a message), so that the faults a subject meets do not depend
on how the event loop happened to interleave concurrent callers. Both count what they
injected (``injected``), so a test can show that faults really happened.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Self, TypeVar

from bot.backends.base import Backend
from bot.errors import BackendUnavailable, StoreUnavailable
from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, Turn
from bot.personas import Persona
from bot.store.base import (
    Account,
    BackendState,
    ConversationRecord,
    ConversationWindow,
    InboxEntry,
    Lease,
    LinkedIdentity,
    Notice,
    PendingLink,
    Store,
    Usage,
    WebSession,
    read_then_append,
)

T = TypeVar("T")

#: The message of every injected failure: a test can check it never reaches a user.
INJECTED = "injected fault"


class FaultDice:
    """Seeded random numbers in [0, 1), one reproducible stream per subject."""

    def __init__(self, seed: int | str) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}

    def roll(self, subject: str) -> float:
        stream = self._streams.get(subject)
        if stream is None:
            # a str seed is hashed with SHA-512: stable across runs and PYTHONHASHSEED
            stream = self._streams[subject] = random.Random(f"{self._seed}|{subject}")
        return stream.random()


class FlakyStore:
    """A Store that fails a seeded ``rate`` of its calls with StoreUnavailable.

    ``after_share`` of the injected failures come after the wrapped call completed.
    ``ops`` limits the faults to those method names (None: every method); ``select``,
    when given, is asked ``select(name, arguments)`` and only the calls it selects may
    fail (``rate=1.0`` with a ``select`` scripts exact faults). Faults are injected only
    while ``armed`` is true. ``calls`` and ``injected`` count, per method name, the calls
    and the faults (``injected`` keys are ``(name, "before"|"after")``). The dice are
    rolled per method and first argument (the conversation, identity or owner).
    """

    def __init__(
        self,
        inner: Store,
        *,
        rate: float = 0.10,
        after_share: float = 0.5,
        seed: int | str = 0,
        ops: frozenset[str] | None = None,
        select: Callable[[str, tuple[Any, ...]], bool] | None = None,
    ) -> None:
        self.inner = inner
        self.rate = rate
        self.after_share = after_share
        self.ops = ops
        self.select = select
        self.armed = True
        self.calls: Counter[str] = Counter()
        self.injected: Counter[tuple[str, str]] = Counter()
        self._dice = FaultDice(seed)

    def injected_when(self, when: str) -> int:
        """How many faults were injected ``"before"`` or ``"after"`` their call."""
        return sum(n for (_, moment), n in self.injected.items() if moment == when)

    async def _call(self, op: str, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """``await call(*args, **kw)`` (the wrapped store's ``op``), maybe failing."""
        self.calls[op] += 1
        fault: str | None = None
        if (
            self.armed
            and (self.ops is None or op in self.ops)
            and (self.select is None or self.select(op, args))
        ):
            roll = self._dice.roll(f"{op}|{args[0] if args else ''}")
            if roll < self.rate:
                fault = "after" if roll < self.rate * self.after_share else "before"
        if fault == "before":
            self.injected[op, fault] += 1
            raise StoreUnavailable(f"{INJECTED}: {op} failed before it ran")
        result = await call(*args, **kw)
        if fault == "after":
            self.injected[op, fault] += 1
            raise StoreUnavailable(f"{INJECTED}: {op} ran, then its answer was lost")
        return result

    # -- lifecycle (never faulted), ping -------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def ping(self) -> None:
        await self._call("ping", self.inner.ping)

    async def probe_write(self) -> None:
        await self._call("probe_write", self.inner.probe_write)

    # -- accounts ------------------------------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        return await self._call(
            "create_account", self.inner.create_account, username, password_hash, now
        )

    async def get_account(self, account_id: str) -> Account | None:
        return await self._call("get_account", self.inner.get_account, account_id)

    async def find_account(self, username: str) -> Account | None:
        return await self._call("find_account", self.inner.find_account, username)

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._call(
            "set_password_hash", self.inner.set_password_hash, account_id, password_hash
        )

    async def delete_account(self, account_id: str) -> None:
        await self._call("delete_account", self.inner.delete_account, account_id)

    # -- identities ----------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        return await self._call("get_identity", self.inner.get_identity, identity)

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        return await self._call("resolve_identity", self.inner.resolve_identity, identity)

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        await self._call(
            "link_identity",
            self.inner.link_identity,
            identity,
            display_name,
            account_id,
            now,
            move_guest_data=move_guest_data,
        )

    async def unlink_identity(self, identity: Identity) -> None:
        await self._call("unlink_identity", self.inner.unlink_identity, identity)

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        return await self._call("list_identities", self.inner.list_identities, account_id)

    # -- link codes and web sessions -----------------------------------------------------

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        await self._call(
            "put_link_code",
            self.inner.put_link_code,
            code_hash,
            account_id,
            expires_at,
            max_live=max_live,
        )

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        return await self._call("peek_link_code", self.inner.peek_link_code, code_hash, now)

    async def put_pending_link(self, pending: PendingLink) -> None:
        await self._call("put_pending_link", self.inner.put_pending_link, pending)

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        return await self._call("take_pending_link", self.inner.take_pending_link, identity, now)

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        await self._call("add_notice", self.inner.add_notice, account_id, text, now, expires_at)

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        return await self._call("list_notices", self.inner.list_notices, account_id, now, limit)

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        return await self._call("take_link_code", self.inner.take_link_code, code_hash, now)

    async def put_web_session(self, token_hash: str, account_id: str, expires_at: float) -> None:
        await self._call(
            "put_web_session", self.inner.put_web_session, token_hash, account_id, expires_at
        )

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        return await self._call("get_web_session", self.inner.get_web_session, token_hash, now)

    async def delete_web_session(self, token_hash: str) -> None:
        await self._call("delete_web_session", self.inner.delete_web_session, token_hash)

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        return await self._call(
            "delete_web_sessions", self.inner.delete_web_sessions, account_id, keep=keep
        )

    # -- preferences ---------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]:
        return await self._call("get_preferences", self.inner.get_preferences, owner)

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        await self._call("set_preference", self.inner.set_preference, owner, name, value)

    # -- conversations -------------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        return await self._call("load_window", self.inner.load_window, key, max_turns)

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        return await self._call("owner_epoch", self.inner.owner_epoch, owner)

    async def epoch_and_window(
        self, key: ConversationKey, max_turns: int
    ) -> tuple[int | None, ConversationWindow]:
        # as the two reads it stands for, so faults land where the tests aim them
        epoch = await self.owner_epoch(key.owner)
        return epoch, await self.load_window(key, max_turns)

    async def append_turns(
        self,
        key: ConversationKey,
        turns: Sequence[NewTurn],
        expected_version: int,
        now: float,
        *,
        take_lease: Lease | None = None,
        release_lease: str | None = None,
        epoch: int | None = None,
    ) -> tuple[int, tuple[Turn, ...]]:
        return await self._call(
            "append_turns",
            self.inner.append_turns,
            key,
            turns,
            expected_version,
            now,
            take_lease=take_lease,
            release_lease=release_lease,
            epoch=epoch,
        )

    async def read_and_append(
        self,
        key: ConversationKey,
        max_turns: int,
        turns: Sequence[NewTurn],
        now: float,
        *,
        take_lease: Lease | None = None,
    ) -> tuple[int | None, ConversationWindow, int, tuple[Turn, ...]]:
        # as the read and the append it stands for, so faults land where tests aim them
        self.calls["read_and_append"] += 1
        return await read_then_append(self, key, max_turns, turns, now, take_lease)

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        await self._call("release_lease", self.inner.release_lease, key, holder)

    async def claim_event(
        self,
        source: str,
        event_id: str,
        now: float,
        expires_at: float,
        *,
        payload: str | None = None,
        hold_until: float = 0.0,
    ) -> bool:
        return await self._call(
            "claim_event",
            self.inner.claim_event,
            source,
            event_id,
            now,
            expires_at,
            payload=payload,
            hold_until=hold_until,
        )

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        return await self._call("take_inbox", self.inner.take_inbox, source, now, hold_until, limit)

    async def finish_inbox(self, source: str, event_id: str) -> None:
        await self._call("finish_inbox", self.inner.finish_inbox, source, event_id)

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        return await self._call(
            "save_conversation_state",
            self.inner.save_conversation_state,
            key,
            expected_version,
            backend_state=backend_state,
            summary=summary,
            epoch=epoch,
        )

    async def reset_conversation(self, key: ConversationKey) -> None:
        await self._call("reset_conversation", self.inner.reset_conversation, key)

    # -- usage, export, forget -----------------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        await self._call("add_usage", self.inner.add_usage, owner, prompt_tokens, completion_tokens)

    async def get_usage(self, owner: OwnerId) -> Usage:
        return await self._call("get_usage", self.inner.get_usage, owner)

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        return await self._call("export_owner", self.inner.export_owner, owner)

    async def purge_expired(self, now: float) -> int:
        return await self._call("purge_expired", self.inner.purge_expired, now)

    async def forget_owner(self, owner: OwnerId) -> None:
        await self._call("forget_owner", self.inner.forget_owner, owner)


class FlakyBackend:
    """A Backend that fails a seeded share of its replies, under the wrapped one's name.

    Per call, one roll decides: below ``fail_before``, BackendUnavailable before any
    text; then up to ``+ fail_mid``, the wrapped reply's first ``1..2`` deltas and then
    BackendUnavailable; then up to ``+ stall``, a wait of ``stall_seconds`` (meant to be
    longer than the guard's timeout) before the first delta or after the first one.
    The rolls are per message (author and text), so a message meets the same faults
    however the calls of concurrent messages interleave. ``injected`` counts
    ``"before"``, ``"mid"`` and ``"stall"``.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        fail_before: float = 0.08,
        fail_mid: float = 0.07,
        stall: float = 0.05,
        stall_seconds: float = 5.0,
        seed: int | str = 0,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.fail_before = fail_before
        self.fail_mid = fail_mid
        self.stall = stall
        self.stall_seconds = stall_seconds
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self._dice = FaultDice(seed)

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        **extra: Any,
    ) -> AsyncIterator[str]:
        self.calls += 1
        subject = f"{message.author}|{message.text}"
        roll = self._dice.roll(subject)
        cut = 1 + int(self._dice.roll(subject) * 2)  # where a mid-stream fault strikes
        if roll < self.fail_before:
            self.injected["before"] += 1
            raise BackendUnavailable(f"{INJECTED}: the backend refused")
        failing_mid = roll < self.fail_before + self.fail_mid
        stalling = not failing_mid and roll < self.fail_before + self.fail_mid + self.stall
        stall_at = cut - 1  # 0: before the first delta, 1: after it
        produced = 0
        source = self.inner.reply(persona, window, message, state, **extra)
        async with aclosing(source):  # type: ignore[type-var]
            async for delta in source:
                if stalling and produced == stall_at:
                    self.injected["stall"] += 1
                    await asyncio.sleep(self.stall_seconds)
                    stalling = False
                if failing_mid and produced == cut:
                    break
                produced += 1
                yield delta
        if failing_mid:
            self.injected["mid"] += 1
            raise BackendUnavailable(f"{INJECTED}: the backend broke off its reply")

    async def aclose(self) -> None:
        await self.inner.aclose()
