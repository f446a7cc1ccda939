"""``MemoryStore``: the whole :class:`~bot.store.base.Store` in dicts.

It passes the same contract suite as the real stores, so it doubles as the fake that
other components test against. Every method yields to the event loop once, then runs to
completion without awaiting, so each operation is atomic under asyncio concurrency
(the way one SQL transaction is) while concurrent callers still interleave between
operations. ``fail`` injects faults without mocking: it is called with the method name
before each operation, and an exception it returns is raised.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Any, Self

from bot.errors import (
    ConversationBusy,
    OwnerForgotten,
    StoreError,
    StoreUnavailable,
    UsernameTaken,
    VersionConflict,
)
from bot.messages import (
    ConversationKey,
    Identity,
    NewTurn,
    OwnerId,
    Turn,
    account_owner,
    guest_owner,
)
from bot.store.base import (
    Account,
    ConversationRecord,
    ConversationWindow,
    InboxEntry,
    Lease,
    LinkedIdentity,
    Notice,
    PendingLink,
    Usage,
    WebSession,
    lease_blocks,
)

#: Decides whether an operation fails: gets the method name, returns what to raise.
FaultHook = Callable[[str], BaseException | None]

#: ``(persona_id, scope)``: a conversation key within one owner.
_Slot = tuple[str, str]


@dataclass(eq=False)
class _Conversation:
    id: int
    started_at: float
    version: int
    archived: bool = False
    turns: list[Turn] = field(default_factory=list)
    backend_state: str = "{}"  # kept as JSON, as a real store would, to refuse what isn't
    summary: str = ""
    lease: Lease | None = None


class MemoryStore:
    """An in-memory :class:`~bot.store.base.Store`; its data lives as long as the object."""

    def __init__(self, *, fail: FaultHook | None = None) -> None:
        self._fail = fail
        self._open = False
        self._ids = count(1)
        self._accounts: dict[str, Account] = {}
        self._names: dict[str, str] = {}  # casefolded username -> account id
        self._identities: dict[Identity, LinkedIdentity] = {}
        self._codes: dict[str, tuple[str, float]] = {}
        self._sessions: dict[str, WebSession] = {}
        self._pending_links: dict[Identity, PendingLink] = {}
        self._notices: dict[str, list[tuple[Notice, float]]] = {}  # account -> (notice, expiry)
        self._prefs: dict[OwnerId, dict[str, str]] = {}
        # owner -> (persona, scope) -> conversations, oldest first; only the last may be current
        self._conversations: dict[OwnerId, dict[_Slot, list[_Conversation]]] = {}
        self._usage: dict[OwnerId, Usage] = {}
        self._events: dict[tuple[str, str], float] = {}  # (source, id) -> expires_at
        # (source, id) -> the entry and until when it is held
        self._inbox: dict[tuple[str, str], tuple[InboxEntry, float]] = {}
        # owner -> epoch; None marks a deleted account's owner (a tombstone, kept)
        self._epochs: dict[OwnerId, int | None] = {}

    async def __aenter__(self) -> Self:
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._open = False

    async def _enter(self, operation: str) -> None:
        await asyncio.sleep(0)
        if not self._open:
            raise StoreUnavailable("the store is not open (use `async with store:`)")
        if self._fail is not None and (error := self._fail(operation)) is not None:
            raise error

    async def ping(self) -> None:
        await self._enter("ping")

    async def probe_write(self) -> None:
        await self._enter("probe_write")

    # -- accounts ---------------------------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        await self._enter("create_account")
        folded = username.casefold()
        if folded in self._names:
            raise UsernameTaken(f"the username {username!r} is taken")
        account_id = secrets.token_hex(8)
        while account_owner(account_id) in self._epochs:  # a deleted id is never reused
            account_id = secrets.token_hex(8)
        account = Account(account_id, username, password_hash, now)
        self._accounts[account.id] = account
        self._names[folded] = account.id
        return account

    async def get_account(self, account_id: str) -> Account | None:
        await self._enter("get_account")
        return self._accounts.get(account_id)

    async def find_account(self, username: str) -> Account | None:
        await self._enter("find_account")
        account_id = self._names.get(username.casefold())
        return self._accounts.get(account_id) if account_id else None

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._enter("set_password_hash")
        if (account := self._accounts.get(account_id)) is not None:
            self._accounts[account_id] = replace(account, password_hash=password_hash)

    async def delete_account(self, account_id: str) -> None:
        await self._enter("delete_account")
        account = self._accounts.pop(account_id, None)
        if account is None:
            return
        del self._names[account.username.casefold()]
        for identity in [
            i for i, link in self._identities.items() if link.account_id == account_id
        ]:
            del self._identities[identity]
        for code in [c for c, (owner, _) in self._codes.items() if owner == account_id]:
            del self._codes[code]
        for token in [t for t, s in self._sessions.items() if s.account_id == account_id]:
            del self._sessions[token]
        for asking in [i for i, p in self._pending_links.items() if p.account_id == account_id]:
            del self._pending_links[asking]
        self._notices.pop(account_id, None)
        owner = account_owner(account_id)
        self._epochs[owner] = None
        self._prefs.pop(owner, None)
        self._conversations.pop(owner, None)
        self._usage.pop(owner, None)

    # -- identities -------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        await self._enter("get_identity")
        return self._identities.get(identity)

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        await self._enter("resolve_identity")
        link = self._identities.get(identity)
        owner = account_owner(link.account_id) if link else guest_owner(identity)
        return link, dict(self._prefs.get(owner, {}))

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        await self._enter("link_identity")
        if account_id not in self._accounts:
            raise StoreError(f"no account with id {account_id!r}")
        old = self._identities.get(identity)
        linked_at = old.linked_at if old is not None and old.account_id == account_id else now
        self._identities[identity] = LinkedIdentity(
            identity.platform, identity.user_id, display_name, account_id, linked_at
        )
        if move_guest_data:
            self._move_guest_data(guest_owner(identity), account_owner(account_id))

    def _move_guest_data(self, guest: OwnerId, owner: OwnerId) -> None:
        moving = self._conversations.pop(guest, {})
        target = self._conversations.setdefault(owner, {})
        for slot, conversations in moving.items():
            there = target.setdefault(slot, [])
            current = _current(conversations)
            if current is not None:
                theirs = _current(there)
                if theirs is not None and theirs.turns:
                    current.archived = True
                else:
                    if theirs is not None:
                        theirs.archived, theirs.version = True, theirs.version + 1
                    floor = max((c.version for c in there), default=0)
                    current.version = max(current.version, floor) + 1
            # the account's current conversation (if any) must stay last
            merged = sorted(there + conversations, key=lambda c: (not c.archived, c.id))
            there[:] = merged

    async def unlink_identity(self, identity: Identity) -> None:
        await self._enter("unlink_identity")
        self._identities.pop(identity, None)

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        await self._enter("list_identities")
        linked = [link for link in self._identities.values() if link.account_id == account_id]
        return sorted(linked, key=lambda link: link.linked_at)  # stable: ties keep link order

    # -- link codes and web sessions --------------------------------------------------

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        await self._enter("put_link_code")
        if account_id not in self._accounts:
            raise StoreError(f"no account with id {account_id!r}")
        self._codes.pop(code_hash, None)
        if max_live is not None:
            # expired codes count too until purged: what matters is what can be taken,
            # and an expired one cannot, so they simply go first (they expire first)
            theirs = sorted(
                (expiry, code)
                for code, (owner, expiry) in self._codes.items()
                if owner == account_id
            )
            for _, code in theirs[: max(0, len(theirs) - max_live + 1)]:
                del self._codes[code]
        self._codes[code_hash] = (account_id, expires_at)

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        await self._enter("peek_link_code")
        account_id, expires_at = self._codes.get(code_hash, (None, 0.0))
        return account_id if expires_at > now else None

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        await self._enter("take_link_code")
        account_id, expires_at = self._codes.pop(code_hash, (None, 0.0))
        return account_id if expires_at > now else None

    async def put_pending_link(self, pending: PendingLink) -> None:
        await self._enter("put_pending_link")
        if pending.account_id not in self._accounts:
            raise StoreError(f"no account with id {pending.account_id!r}")
        self._pending_links[pending.identity] = pending

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        await self._enter("take_pending_link")
        pending = self._pending_links.pop(identity, None)
        return pending if pending is not None and pending.expires_at > now else None

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        await self._enter("add_notice")
        if account_id not in self._accounts:
            raise StoreError(f"no account with id {account_id!r}")
        self._notices.setdefault(account_id, []).append((Notice(now, text), expires_at))

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        await self._enter("list_notices")
        live = [notice for notice, expiry in self._notices.get(account_id, []) if expiry > now]
        live.sort(key=lambda notice: notice.created_at)  # stable: ties keep their order
        return live[::-1][:limit]

    async def put_web_session(self, token_hash: str, account_id: str, expires_at: float) -> None:
        await self._enter("put_web_session")
        if account_id not in self._accounts:
            raise StoreError(f"no account with id {account_id!r}")
        self._sessions[token_hash] = WebSession(account_id, expires_at)

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        await self._enter("get_web_session")
        session = self._sessions.get(token_hash)
        return session if session is not None and session.expires_at > now else None

    async def delete_web_session(self, token_hash: str) -> None:
        await self._enter("delete_web_session")
        self._sessions.pop(token_hash, None)

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        await self._enter("delete_web_sessions")
        doomed = [
            token
            for token, session in self._sessions.items()
            if session.account_id == account_id and token != keep
        ]
        for token in doomed:
            del self._sessions[token]
        return len(doomed)

    async def purge_expired(self, now: float) -> int:
        await self._enter("purge_expired")
        codes = [code for code, (_, expires_at) in self._codes.items() if expires_at <= now]
        tokens = [token for token, s in self._sessions.items() if s.expires_at <= now]
        for code in codes:
            del self._codes[code]
        for token in tokens:
            del self._sessions[token]
        pending = [i for i, p in self._pending_links.items() if p.expires_at <= now]
        for identity in pending:
            del self._pending_links[identity]
        notices = 0
        for kept in self._notices.values():
            live = [(notice, expiry) for notice, expiry in kept if expiry > now]
            notices += len(kept) - len(live)
            kept[:] = live
        events = [event for event, expires_at in self._events.items() if expires_at <= now]
        for event in events:
            del self._events[event]
            self._inbox.pop(event, None)
        return len(codes) + len(tokens) + len(pending) + notices + len(events)

    # -- platform events and the inbox ------------------------------------------------

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
        await self._enter("claim_event")
        event = (source, event_id)
        known = self._events.get(event)
        if known is not None and known > now:
            return False
        self._events[event] = expires_at
        if payload is not None:
            self._inbox[event] = (InboxEntry(source, event_id, payload, now), hold_until)
        return True

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        await self._enter("take_inbox")
        taken: list[InboxEntry] = []
        for event, (entry, held) in list(self._inbox.items()):
            if len(taken) >= limit:
                break
            if event[0] == source and held <= now:
                self._inbox[event] = (entry, hold_until)
                taken.append(entry)
        return taken

    async def finish_inbox(self, source: str, event_id: str) -> None:
        await self._enter("finish_inbox")
        self._inbox.pop((source, event_id), None)

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]:
        await self._enter("get_preferences")
        return dict(self._prefs.get(owner, {}))

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        await self._enter("set_preference")
        if owner in self._epochs and self._epochs[owner] is None:
            return  # a deleted account's: nothing of it may be stored again
        prefs = self._prefs.setdefault(owner, {})
        if value is None:
            prefs.pop(name, None)
        else:
            prefs[name] = value
        if not prefs:
            del self._prefs[owner]

    # -- conversations ----------------------------------------------------------------

    def _slot(self, key: ConversationKey) -> list[_Conversation]:
        return self._conversations.get(key.owner, {}).get((key.persona_id, key.scope), [])

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        await self._enter("load_window")
        return self._window(key, max_turns)

    def _window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        conversations = self._slot(key)
        current = _current(conversations)
        if current is None:
            return ConversationWindow(max((c.version for c in conversations), default=0))
        turns = tuple(current.turns[-max_turns:]) if max_turns > 0 else ()
        return ConversationWindow(
            current.version, turns, json.loads(current.backend_state), current.summary
        )

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        await self._enter("owner_epoch")
        return self._epochs.get(owner, 0)

    async def epoch_and_window(
        self, key: ConversationKey, max_turns: int
    ) -> tuple[int | None, ConversationWindow]:
        await self._enter("epoch_and_window")
        return self._epochs.get(key.owner, 0), self._window(key, max_turns)

    def _check_epoch(self, owner: OwnerId, epoch: int | None) -> None:
        """Refuse a write for a deleted owner, or from an epoch that has passed."""
        current = self._epochs.get(owner, 0)
        if current is None or (epoch is not None and epoch != current):
            raise OwnerForgotten(f"owner {owner} was forgotten or deleted")

    def _current_for_write(
        self, key: ConversationKey, expected_version: int, now: float, epoch: int | None = None
    ) -> _Conversation:
        """The current conversation if ``expected_version`` still holds (a new one, not
        yet stored, when the key has none); else raise VersionConflict (OwnerForgotten
        when the owner's epoch is not ``epoch``, or it is deleted)."""
        self._check_epoch(key.owner, epoch)
        conversations = self._slot(key)
        current = _current(conversations)
        if current is not None:
            version = current.version
        else:
            version = max((c.version for c in conversations), default=0)
        if version != expected_version:
            raise VersionConflict(
                f"conversation {key} is at version {version}, not {expected_version}"
            )
        return current or _Conversation(next(self._ids), now, version)

    def _keep(self, key: ConversationKey, conversation: _Conversation) -> None:
        slot = self._conversations.setdefault(key.owner, {}).setdefault(
            (key.persona_id, key.scope), []
        )
        if not slot or slot[-1] is not conversation:
            slot.append(conversation)

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
        await self._enter("append_turns")
        return self._append_now(key, turns, expected_version, now, take_lease, release_lease, epoch)

    def _append_now(
        self,
        key: ConversationKey,
        turns: Sequence[NewTurn],
        expected_version: int,
        now: float,
        take_lease: Lease | None,
        release_lease: str | None,
        epoch: int | None,
    ) -> tuple[int, tuple[Turn, ...]]:
        conversation = self._current_for_write(key, expected_version, now, epoch)
        held = conversation.lease
        if held is not None and lease_blocks(held.holder, held.until, take_lease, now):
            raise ConversationBusy(f"conversation {key} is being answered", until=held.until)
        if take_lease is not None:
            conversation.lease = take_lease
        elif held is not None and held.holder == release_lease:
            conversation.lease = None
        if not conversation.turns:
            conversation.started_at = now
        first = len(conversation.turns) + 1
        stored = tuple(
            Turn(
                seq,
                new.role,
                new.text,
                new.author,
                new.created_at,
                new.reply_to,
                tuple(item.stored() for item in new.attachments),
            )
            for seq, new in enumerate(turns, start=first)
        )
        conversation.turns.extend(stored)
        conversation.version += 1
        self._keep(key, conversation)
        return conversation.version, stored

    async def read_and_append(
        self,
        key: ConversationKey,
        max_turns: int,
        turns: Sequence[NewTurn],
        now: float,
        *,
        take_lease: Lease | None = None,
    ) -> tuple[int | None, ConversationWindow, int, tuple[Turn, ...]]:
        # one trip (nothing runs between the read and the append); faults are aimed at
        # the read and the append it stands for, as tests aim them
        await self._enter("epoch_and_window")
        epoch, window = self._epochs.get(key.owner, 0), self._window(key, max_turns)
        if epoch is None:
            return None, window, window.version, ()
        if self._fail is not None and (error := self._fail("append_turns")) is not None:
            raise error
        version, stored = self._append_now(key, turns, window.version, now, take_lease, None, epoch)
        return epoch, window, version, stored

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        await self._enter("save_conversation_state")
        state = None if backend_state is None else json.dumps(dict(backend_state))
        # a conversation started here has no turns yet; its first append dates it
        conversation = self._current_for_write(key, expected_version, 0.0, epoch)
        if state is not None:
            conversation.backend_state = state
        if summary is not None:
            conversation.summary = summary
        conversation.version += 1
        self._keep(key, conversation)
        return conversation.version

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        await self._enter("release_lease")
        current = _current(self._slot(key))
        if current is not None and current.lease is not None and current.lease.holder == holder:
            current.lease = None

    async def reset_conversation(self, key: ConversationKey) -> None:
        await self._enter("reset_conversation")
        current = _current(self._slot(key))
        if current is not None:
            current.archived, current.version = True, current.version + 1

    # -- token usage ------------------------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        await self._enter("add_usage")
        if owner in self._epochs and self._epochs[owner] is None:
            return
        old = self._usage.get(owner, Usage())
        self._usage[owner] = Usage(
            old.prompt_tokens + prompt_tokens,
            old.completion_tokens + completion_tokens,
            old.replies + 1,
        )

    async def get_usage(self, owner: OwnerId) -> Usage:
        await self._enter("get_usage")
        return self._usage.get(owner, Usage())

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        await self._enter("export_owner")
        found = [
            (conversation, slot)
            for slot, conversations in self._conversations.get(owner, {}).items()
            for conversation in conversations
        ]
        found.sort(key=lambda pair: pair[0].id)
        return [
            ConversationRecord(persona_id, scope, c.archived, c.started_at, tuple(c.turns))
            for c, (persona_id, scope) in found
        ]

    async def forget_owner(self, owner: OwnerId) -> None:
        await self._enter("forget_owner")
        epoch = self._epochs.get(owner, 0)
        if epoch is not None:
            self._epochs[owner] = epoch + 1
        self._conversations.pop(owner, None)
        self._prefs.pop(owner, None)
        self._usage.pop(owner, None)


def _current(conversations: list[_Conversation]) -> _Conversation | None:
    if conversations and not conversations[-1].archived:
        return conversations[-1]
    return None
