"""``DynamoStore``: the :class:`~bot.store.base.Store` on one DynamoDB table.

The layout, access patterns and call counts are described in :mod:`bot.store.dynamo`.
Here: identities, preferences, usage and whole owners; the rest is delegated to
:mod:`~bot.store.dynamo.accounts` (accounts, codes, sessions),
:mod:`~bot.store.dynamo.conversations`, :mod:`~bot.store.dynamo.linking` (guest data
moved by a link) and :mod:`~bot.store.dynamo.table` (the client).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

from aiobotocore.session import AioSession  # type: ignore[import-untyped]

from bot.errors import StoreError, StoreUnavailable
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
    read_then_append,
)
from bot.store.dynamo import accounts, consent, events, keys
from bot.store.dynamo.codec import Item, integer, number, optional_text, text, values
from bot.store.dynamo.conversations import Conversations
from bot.store.dynamo.linking import PREF, GuestMover, preferences_of
from bot.store.dynamo.recent import Recent
from bot.store.dynamo.table import Cancelled, DynamoStats, Table
from bot.store.lru import Lru

#: Attempts of a read-then-write on an identity that changes under us.
_IDENTITY_ATTEMPTS = 5


class DynamoStore:
    """A :class:`~bot.store.base.Store` on the DynamoDB table ``table`` (create it with
    :func:`~bot.store.dynamo.admin.create_table`, ``personabridge db create``).

    One aiobotocore client per store, opened by ``async with`` and closed with it;
    credentials come from botocore's usual chain (environment, profile, role).
    ``endpoint_url`` points at another DynamoDB (a local one, moto); ``region`` defaults
    to botocore's. Throttling and transient errors are retried by botocore in
    ``retry_mode`` (``standard`` or ``adaptive``) up to ``max_attempts`` attempts.
    ``cache_size`` bounds the hints kept per conversation key and per identity, and
    ``window_cache`` the conversations whose recent turns are kept (turns are immutable:
    see :mod:`bot.store.dynamo.recent`). ``session`` is an aiobotocore ``AioSession`` to
    share between stores (it caches botocore's service model; by default each store
    makes its own).
    """

    def __init__(
        self,
        table: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        max_attempts: int = 5,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_pool_connections: int = 64,
        cache_size: int = 10_000,
        window_cache: int = 1024,
        session: AioSession | None = None,
    ) -> None:
        self._table = Table(
            table,
            endpoint_url=endpoint_url,
            region=region,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            session=session,
        )
        self._recent = Recent(cache_size, window_cache)
        self._conversations = Conversations(self._table, self._recent)
        #: who each identity last spoke for here: what to read along with it next time
        self._owner_hints: Lru[Identity, OwnerId] = Lru(cache_size)
        # epochs read along with an owner's preferences, for the owner_epoch call that
        # follows in the same message (taken once: never a check, only a saved trip)
        self._epochs_read: Lru[OwnerId, tuple[int | None]] = Lru(cache_size)

    @property
    def table(self) -> Table:
        """The table and its client (for the admin functions and for statistics)."""
        return self._table

    @property
    def stats(self) -> DynamoStats:
        """Calls, attempts and version conflicts so far."""
        return self._table.stats

    async def __aenter__(self) -> Self:
        await self._table.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._table.close()

    async def ping(self) -> None:
        await self._table.get(keys.key("PING", "PING"), consistent=False)

    async def probe_write(self) -> None:
        now = time.time()
        await self._table.put({**keys.key("PING", "PING"), "at": now, keys.TTL: int(now) + 3600})

    # -- accounts ---------------------------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        return await accounts.create_account(self._table, username, password_hash, now)

    async def get_account(self, account_id: str) -> Account | None:
        return accounts.account_of(await self._table.get(keys.account_record(account_id)))

    async def find_account(self, username: str) -> Account | None:
        return await accounts.find_account(self._table, username)

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await accounts.set_password_hash(self._table, account_id, password_hash)

    async def delete_account(self, account_id: str) -> None:
        if await self._table.get(keys.account_record(account_id)) is not None:
            # the tombstone goes first: appends already under way are refused from here on
            await self._table.update(
                keys.epoch(account_owner(account_id)),
                UpdateExpression="SET deleted = :t",
                ExpressionAttributeValues=values(t=True),
            )
            self._epochs_read.pop(account_owner(account_id))
        if await accounts.delete_account(self._table, account_id, self._forget):
            owner = account_owner(account_id)
            self._owner_hints.drop_where(lambda _, hinted: hinted == owner)

    # -- identities -------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        return _link(await self._table.get(keys.identity(identity)))

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        # One BatchGetItem: the identity, the preferences of the owner it spoke for
        # last time here, and that conversation's META and newest turns (kept for the
        # load_window that follows). Only a changed owner costs a second trip.
        guess = self._owner_hints.get(identity) or guest_owner(identity)
        plan = self._recent.plan(guess)
        wanted = [keys.identity(identity), keys.preferences(guess), keys.epoch(guess)]
        if plan is not None:
            wanted += self._recent.keys_of(plan)
        items = await self._table.batch_get(wanted)
        found = {(item.get(keys.PK), item.get(keys.SK)): item for item in items}
        link = _link(found.get((wanted[0][keys.PK], keys.IDENTITY)))
        owner = account_owner(link.account_id) if link else guest_owner(identity)
        if owner == guess:
            prefs = preferences_of(found.get((wanted[1][keys.PK], keys.PREFS)))
            self._epoch_read(owner, found.get((wanted[2][keys.PK], keys.EPOCH)))
            if plan is not None:
                self._recent.prefetched(plan, items)
        else:
            prefs = await self.get_preferences(owner)
        self._owner_hints.put(identity, owner)
        return link, prefs

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        for _ in range(_IDENTITY_ATTEMPTS):
            old = await self._table.get(keys.identity(identity))
            old_account = optional_text(old, "account_id") if old else None
            same = old is not None and old_account == account_id
            fields = {
                "platform": identity.platform,
                "user_id": identity.user_id,
                "display_name": display_name,
                "account_id": account_id,
                "linked_at": number(old, "linked_at") if old and same else now,
                # ties of linked_at keep the order of linking
                "order": integer(old, "order", 0) if old and same else time.time_ns(),
            }
            unchanged = (
                {"ConditionExpression": "attribute_not_exists(PK)"}
                if old is None
                else {
                    "ConditionExpression": "account_id = :old",
                    "ExpressionAttributeValues": values(old=old_account),
                }
            )
            actions = [
                self._table.check_action(keys.account_record(account_id), accounts.ACCOUNT_LIVE),
                self._table.put_action({**keys.identity(identity), **fields}, **unchanged),
                self._table.put_action({**keys.identity_index(account_id, identity), **fields}),
            ]
            if old_account is not None and not same:
                actions.append(
                    self._table.delete_action(keys.identity_index(old_account, identity))
                )
            try:
                await self._table.transact(actions)
                break
            except Cancelled as cancelled:
                if cancelled.failed(0):
                    raise StoreError(f"no account with id {account_id!r}") from cancelled
                if not cancelled.failed(1):
                    raise
        else:
            raise StoreUnavailable(f"the identity {identity} kept changing while linking")
        owner = account_owner(account_id)
        self._owner_hints.put(identity, owner)
        if move_guest_data:
            guest = guest_owner(identity)
            await GuestMover(self._table, self._conversations, guest, owner).move()

    async def unlink_identity(self, identity: Identity) -> None:
        for _ in range(_IDENTITY_ATTEMPTS):
            old = await self._table.get(keys.identity(identity))
            self._owner_hints.pop(identity)
            if old is None:
                return
            account_id = text(old, "account_id")
            try:
                await self._table.transact(
                    [
                        self._table.delete_action(
                            keys.identity(identity),
                            ConditionExpression="account_id = :a",
                            ExpressionAttributeValues=values(a=account_id),
                        ),
                        self._table.delete_action(keys.identity_index(account_id, identity)),
                    ]
                )
                return
            except Cancelled as cancelled:
                if not cancelled.failed(0):
                    raise
        raise StoreUnavailable(f"the identity {identity} kept changing while unlinking")

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        items = await self._table.query(
            None,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=values(
                pk=keys.owner_pk(account_owner(account_id)), prefix=f"{keys.IDENTITY}#"
            ),
        )
        items.sort(key=lambda item: (number(item, "linked_at"), integer(item, "order", 0)))
        return [link for link in map(_link, items) if link is not None]

    # -- link codes and web sessions --------------------------------------------------

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        if max_live is not None:
            await consent.put_capped_link_code(
                self._table, code_hash, account_id, expires_at, max_live
            )
            return
        code = keys.link_code(code_hash)
        await accounts.put_expiring(self._table, code, account_id, expires_at, "link code")

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        return await consent.peek_link_code(self._table, code_hash, now)

    async def put_pending_link(self, pending: PendingLink) -> None:
        await consent.put_pending_link(self._table, pending)

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        return await consent.take_pending_link(self._table, identity, now)

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        await consent.add_notice(self._table, account_id, text, now, expires_at)

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        return await consent.list_notices(self._table, account_id, now, limit)

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        return await accounts.take_link_code(self._table, code_hash, now)

    async def put_web_session(self, token_hash: str, account_id: str, expires_at: float) -> None:
        session = keys.web_session(token_hash)
        await accounts.put_expiring(self._table, session, account_id, expires_at, "session")

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        return await accounts.get_web_session(self._table, token_hash, now)

    async def delete_web_session(self, token_hash: str) -> None:
        await accounts.delete_web_session(self._table, token_hash)

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        # the sessions are indexed in the account's partition (written with each one)
        owner = account_owner(account_id)
        kept = keys.web_session(keep)[keys.PK] if keep is not None else None
        gone = 0
        for item in await accounts.owner_items(self._table, owner):
            sk = text(item, keys.SK)
            if sk.startswith(f"{keys.WEBSESSION}#") and sk != kept:
                await accounts.delete_web_session(self._table, sk.partition("#")[2])
                gone += 1
        return gone

    async def purge_expired(self, now: float) -> int:
        """Nothing to do, and no call made: ``expires_at`` is the table's TTL attribute
        (on the codes, the sessions and their index items; ``db create`` enables it and
        ``db check`` insists on it), so DynamoDB deletes expired items itself, in the
        background, without write cost. Finding them here would take a Scan of the whole
        table, paid per item read, every round. Until TTL gets to an item, every read
        filters on its expiry (see :mod:`bot.store.dynamo`). Always 0: this deletes
        nothing."""
        return 0

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]:
        # What the web asks for every message (it knows the account from its session):
        # like resolve_identity, it brings the owner's next window along
        plan = self._recent.plan(owner)
        wanted = [keys.preferences(owner), keys.epoch(owner)]
        if plan is not None:
            wanted += self._recent.keys_of(plan)
        items = await self._table.batch_get(wanted)
        if plan is not None:
            self._recent.prefetched(plan, items)
        found = {(item.get(keys.PK), item.get(keys.SK)): item for item in items}
        self._epoch_read(owner, found.get((wanted[1][keys.PK], keys.EPOCH)))
        return preferences_of(found.get((wanted[0][keys.PK], keys.PREFS)))

    def _epoch_read(self, owner: OwnerId, item: Item | None) -> None:
        self._epochs_read.put(owner, (_epoch_of(item),))

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        if value is None:
            await self._table.update(
                keys.preferences(owner),
                UpdateExpression="REMOVE #p",
                ExpressionAttributeNames={"#p": PREF + name},
            )
        else:
            await self._table.update(
                keys.preferences(owner),
                UpdateExpression="SET #p = :v",
                ExpressionAttributeNames={"#p": PREF + name},
                ExpressionAttributeValues=values(v=value),
            )

    # -- conversations ----------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        return await self._conversations.load_window(key, max_turns)

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        read = self._epochs_read.pop(owner)
        if read is not None:
            return read[0]
        return _epoch_of(await self._table.get(keys.epoch(owner)))

    async def epoch_and_window(
        self, key: ConversationKey, max_turns: int
    ) -> tuple[int | None, ConversationWindow]:
        # the epoch first (usually read already along with the preferences: no call),
        # then the window (usually prefetched the same way)
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
        return await self._conversations.append(
            key, turns, expected_version, now, take_lease, release_lease, epoch
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
        # two trips (the read is usually prefetched: no call); the version check of the
        # append refuses it when another process appended in between
        return await read_then_append(self, key, max_turns, turns, now, take_lease)

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        await self._conversations.release_lease(key, holder)

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
        return await events.claim_event(
            self._table, source, event_id, now, expires_at, payload, hold_until
        )

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        return await events.take_inbox(self._table, source, now, hold_until, limit)

    async def finish_inbox(self, source: str, event_id: str) -> None:
        await events.finish_inbox(self._table, source, event_id)

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        return await self._conversations.save_state(
            key, expected_version, backend_state, summary, epoch
        )

    async def reset_conversation(self, key: ConversationKey) -> None:
        await self._conversations.reset(key)

    # -- token usage ------------------------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        await self._table.update(
            keys.usage(owner),
            UpdateExpression="ADD prompt_tokens :p, completion_tokens :c, replies :one",
            ExpressionAttributeValues=values(p=prompt_tokens, c=completion_tokens, one=1),
        )

    async def get_usage(self, owner: OwnerId) -> Usage:
        item = await self._table.get(keys.usage(owner))
        if item is None:
            return Usage()
        return Usage(
            integer(item, "prompt_tokens", 0),
            integer(item, "completion_tokens", 0),
            integer(item, "replies", 0),
        )

    # -- whole owners -----------------------------------------------------------------

    @staticmethod
    def _slots(owner: OwnerId, index: Sequence[Item]) -> list[ConversationKey]:
        return [
            ConversationKey(owner, text(item, "persona_id"), text(item, "scope"))
            for item in index
            if text(item, keys.SK).startswith(keys.SLOT)
        ]

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        found = []
        for slot in self._slots(owner, await accounts.owner_items(self._table, owner)):
            found += await self._conversations.records(slot)
        found.sort(key=lambda pair: pair[0])
        return [record for _, record in found]

    async def forget_owner(self, owner: OwnerId) -> None:
        # the epoch moves first: appends already under way are refused from here on
        await self._table.update(
            keys.epoch(owner),
            UpdateExpression="ADD epoch :one",
            ExpressionAttributeValues=values(one=1),
        )
        self._epochs_read.pop(owner)
        await self._forget(owner, await accounts.owner_items(self._table, owner))

    async def _forget(self, owner: OwnerId, index: Sequence[Item]) -> None:
        slots = self._slots(owner, index)
        for slot in slots:
            await self._conversations.delete_partition(slot)
        doomed = [keys.slot_index(s.owner, s.persona_id, s.scope) for s in slots]
        await self._table.batch_write(deletes=[*doomed, keys.preferences(owner), keys.usage(owner)])
        self._recent.forget(owner)


def _epoch_of(item: Item | None) -> int | None:
    if item is None:
        return 0
    return None if item.get("deleted") else integer(item, "epoch", 0)


def _link(item: Item | None) -> LinkedIdentity | None:
    if item is None:
        return None
    return LinkedIdentity(
        text(item, "platform"),
        text(item, "user_id"),
        text(item, "display_name"),
        text(item, "account_id"),
        number(item, "linked_at"),
    )
