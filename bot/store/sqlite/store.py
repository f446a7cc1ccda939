"""``SqliteStore``: the :class:`~bot.store.base.Store` in one SQLite file.

Each method is one operation, a function of the connection from the area it belongs to
(:mod:`~bot.store.sqlite.accounts`, :mod:`~bot.store.sqlite.identities`,
:mod:`~bot.store.sqlite.owners`, :mod:`~bot.store.sqlite.conversations`,
:mod:`~bot.store.sqlite.events`), handed to the :class:`~bot.store.sqlite.writer.BatchWriter`
as a read or a write: the writer runs it on the worker thread, batched with the others
queued meanwhile, in one transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, Turn
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
)
from bot.store.sqlite import accounts, conversations, events, identities, owners
from bot.store.sqlite.owner_cache import OwnerCache
from bot.store.sqlite.recent import RecentTurns
from bot.store.sqlite.schema import MIGRATIONS, prepare
from bot.store.sqlite.writer import BatchWriter


class SqliteStore:
    """A :class:`~bot.store.base.Store` in one SQLite file (created, with its directory,
    when missing; upgraded to the current schema when older).

    ``window_cache`` is how many conversations keep their recent turns in memory;
    ``owner_cache`` how many identities' links and owners' preferences and epochs are
    kept (:mod:`~bot.store.sqlite.owner_cache`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        window_cache: int = 1024,
        owner_cache: int = 1024,
        migrations: Sequence[Sequence[str]] = MIGRATIONS,
    ) -> None:
        self._path = Path(path)
        self._recent = RecentTurns(window_cache)
        self._owners = OwnerCache(owner_cache)
        self._db = BatchWriter(
            self._path,
            busy_timeout=busy_timeout,
            prepare=functools.partial(prepare, busy_timeout=busy_timeout, migrations=migrations),
            on_rollback=self._forget_cached,
            on_begin=self._owners.batch_started,
        )
        # writes after which the owner cache forgets (this process's own commits do
        # not change data_version)
        changing = self._owners.changing
        self._create_account = changing(accounts.create_account)
        self._delete_account = changing(accounts.delete_account)
        self._link_identity = changing(identities.link_identity)
        self._unlink_identity = changing(identities.unlink_identity)
        self._set_preference = changing(owners.set_preference)
        self._forget_owner = changing(owners.forget_owner)

    def _forget_cached(self) -> None:
        self._recent.clear()
        self._owners.clear()

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> Self:
        if not self._db.is_open:
            await self._db.open()
            self._recent.clear()
            self._owners.reset()  # data_version counts per connection
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.select("SELECT 1")

    async def probe_write(self) -> None:
        # rewrites the one row of an existing table with its own value: a real write
        # and commit (a read-only file or a full disk fails it), no schema of its own
        await self._db.change("UPDATE conversation_ids SET last = last")

    # -- accounts ---------------------------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        return await self._db.write(self._create_account, username, password_hash, now)

    async def get_account(self, account_id: str) -> Account | None:
        return await self._db.read(accounts.get_account, account_id)

    async def find_account(self, username: str) -> Account | None:
        return await self._db.read(accounts.find_account, username)

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._db.write(accounts.set_password_hash, account_id, password_hash)

    async def delete_account(self, account_id: str) -> None:
        await self._db.write(self._delete_account, account_id)

    # -- identities -------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        return await self._db.read(identities.get_identity, identity)

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        return await self._db.read(identities.resolve_identity, self._owners, identity)

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        await self._db.write(
            self._link_identity, identity, display_name, account_id, now, move_guest_data
        )

    async def unlink_identity(self, identity: Identity) -> None:
        await self._db.write(self._unlink_identity, identity)

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        return await self._db.read(identities.list_identities, account_id)

    # -- link codes and web sessions --------------------------------------------------

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        await self._db.write(accounts.put_link_code, code_hash, account_id, expires_at, max_live)

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        return await self._db.read(accounts.peek_link_code, code_hash, now)

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        return await self._db.write(accounts.take_link_code, code_hash, now)

    async def put_pending_link(self, pending: PendingLink) -> None:
        await self._db.write(accounts.put_pending_link, pending)

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        return await self._db.write(accounts.take_pending_link, identity, now)

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        await self._db.write(accounts.add_notice, account_id, text, now, expires_at)

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        return await self._db.read(accounts.list_notices, account_id, now, limit)

    async def put_web_session(self, token_hash: str, account_id: str, expires_at: float) -> None:
        await self._db.write(accounts.put_web_session, token_hash, account_id, expires_at)

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        return await self._db.read(accounts.get_web_session, token_hash, now)

    async def delete_web_session(self, token_hash: str) -> None:
        await self._db.write(accounts.delete_web_session, token_hash)

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        return await self._db.write(accounts.delete_web_sessions, account_id, keep)

    async def purge_expired(self, now: float) -> int:
        return await self._db.write(accounts.purge_expired, now)

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]:
        return await self._db.read(owners.cached_preferences, self._owners, owner)

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        await self._db.write(self._set_preference, owner, name, value)

    # -- conversations ----------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        return await self._db.read(conversations.load_window, self._recent, key, max_turns)

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        return await self._db.read(owners.epoch, self._owners, owner)

    async def epoch_and_window(
        self, key: ConversationKey, max_turns: int
    ) -> tuple[int | None, ConversationWindow]:
        return await self._db.read(
            conversations.epoch_and_window, self._recent, self._owners, key, max_turns
        )

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
        lease = conversations.LeaseChange(take_lease, release_lease)
        return await self._db.write(
            conversations.append,
            self._recent,
            self._owners,
            key,
            tuple(turns),
            expected_version,
            now,
            epoch,
            lease,
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
        return await self._db.write(
            conversations.read_and_append,
            self._recent,
            self._owners,
            key,
            max_turns,
            tuple(turns),
            now,
            conversations.LeaseChange(take_lease),
        )

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        await self._db.write(conversations.release_lease, key, holder)

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        state = None if backend_state is None else json.dumps(dict(backend_state))
        return await self._db.write(
            conversations.save_state,
            self._recent,
            self._owners,
            key,
            expected_version,
            state,
            summary,
            epoch,
        )

    async def reset_conversation(self, key: ConversationKey) -> None:
        await self._db.write(conversations.reset, key)

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        return await self._db.read(conversations.export, owner)

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
        return await self._db.write(
            events.claim_event, source, event_id, now, expires_at, payload, hold_until
        )

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        return await self._db.write(events.take_inbox, source, now, hold_until, limit)

    async def finish_inbox(self, source: str, event_id: str) -> None:
        await self._db.change(events.FINISH_INBOX, (source, event_id))

    # -- token usage and whole owners -------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        await self._db.write(owners.add_usage, owner, prompt_tokens, completion_tokens)

    async def get_usage(self, owner: OwnerId) -> Usage:
        return await self._db.read(owners.usage, owner)

    async def forget_owner(self, owner: OwnerId) -> None:
        await self._db.write(self._forget_owner, owner)
