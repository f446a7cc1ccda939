"""The ``Store`` protocol: everything PersonaBridge persists, in small intention-named calls.

Every implementation (``MemoryStore``, ``SqliteStore``, ``DynamoStore``) passes the one
contract suite in ``tests/store/`` (``test_contract*.py``). Times are Unix seconds
(float) passed in by the caller, so tests control the clock and expiry is checked on
every read. The values handed out and taken in are in :mod:`bot.store.records`.

Who needs what
    ``Store`` is the union of small protocols, one per area, and each user of a store
    depends on the union of the areas it calls:

    * :class:`ConversationStore` (preferences, conversations): the engine, greetings,
      summaries;
    * :class:`CommandStore` (those, an owner's data as a whole, accounts): the chat
      commands;
    * :class:`LinkingStore` (accounts, identities, link codes, notices, preferences):
      link consent and account notices;
    * :class:`AuthStore` (those, web sessions, an owner's data as a whole): ``auth/``;
    * :class:`EventStore` (platform events and the inbox): :mod:`bot.inbox`;
    * :class:`StoreUpkeep` (opening and closing, health, purging): the wiring and the
      health checks.

Conversations
    A conversation belongs to a :class:`~bot.messages.ConversationKey`
    ``(owner, persona, scope)``. The *current* conversation of a key is what the engine
    reads and appends to; ``reset_conversation`` archives it (it stays stored, and is
    exported, until the owner forgets) and the next append starts a new one. Versions
    never go backwards for a key, across resets too, so a stale ``expected_version``
    never matches a newer conversation.

Leases
    One conversation is answered by one worker at a time, whichever process the message
    reached: the append of a user's turn may take the conversation's *lease*
    (:class:`Lease`, a holder and an expiry) in the same write, and the append of the
    reply releases it. An append that would take a lease another holder still holds
    raises :class:`~bot.errors.ConversationBusy` and stores nothing. A lease past its
    expiry is free (a killed worker's lease frees itself). See :mod:`bot.leases`.

Events and the inbox
    ``claim_event`` records a platform event id (a Telegram update, a Discord
    interaction) with a conditional write, so that of several workers given the same
    event exactly one gets True. With a ``payload`` the event also goes into the durable
    *inbox* until ``finish_inbox``: a worker acknowledges a platform request only once it
    is there, and ``take_inbox`` hands entries whose holder went quiet (a killed worker)
    to another. Records expire and ``purge_expired`` deletes them.

Forgetting
    Every owner has an *epoch*, 0 until its data is first forgotten; ``forget_owner``
    moves it on, ``delete_account`` marks the account's owner deleted for good (a
    tombstone: account ids are never reused). A writer reads the epoch before it reads
    a conversation (``owner_epoch``) and passes it to its appends; the store refuses,
    in the same transaction as the write, an append whose epoch is no longer the
    owner's, and any append for a deleted owner, with
    :class:`~bot.errors.OwnerForgotten`. So a reply still being written when its owner
    forgets (or deletes the account) is never stored, while a guest who forgot chats
    again afresh in the new epoch.

Linking
    ``link_identity`` binds a platform identity to an account and moves the identity's
    guest data to the account: for each ``(persona, scope)``, the guest's current
    conversation becomes the account's current one when the account has no turns there
    yet; otherwise it is kept as an archived conversation of the account. With
    ``move_guest_data=False`` the guest's conversations stay the guest's (the identity
    finds them again once unlinked). Preferences never move: the account's own (its
    persona above all) win, and the guest keeps its own. Nothing is lost.

Link consent
    ``/link CODE`` only *asks*: a :class:`PendingLink` (one per identity, short-lived)
    waits for the same identity's confirmation, which takes it (once, across
    processes) and only then consumes the code (``take_link_code``). ``peek_link_code``
    names the code's account without using it up. An account keeps at most
    ``max_live`` live codes (``put_link_code``): a new one pushes out the oldest.

Notices
    What the owner of an account is told about it (an identity linked or unlinked),
    kept with an expiry for the account page, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, Turn
from bot.store.records import (
    Account,
    BackendState,
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

__all__ = [
    "Account",
    "AccountStore",
    "AuthStore",
    "BackendState",
    "CommandStore",
    "ConversationRecord",
    "ConversationStore",
    "ConversationWindow",
    "EventStore",
    "IdentityStore",
    "InboxEntry",
    "Lease",
    "LinkCodeStore",
    "LinkedIdentity",
    "LinkingStore",
    "Notice",
    "NoticeStore",
    "OwnerDataStore",
    "PendingLink",
    "PreferenceStore",
    "Store",
    "StoreUpkeep",
    "Usage",
    "WebSession",
    "WebSessionStore",
    "lease_blocks",
    "read_then_append",
]

# -- the areas ----------------------------------------------------------------------------


class StoreUpkeep(Protocol):
    """Opening and closing, health and purging. A store is an async context manager:
    ``async with store:`` opens its connection (and prepares its schema) and closes it
    again."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~bot.errors.StoreUnavailable` when the store cannot be used."""

    async def probe_write(self) -> None:
        """Make one small real write (committed), raising
        :class:`~bot.errors.StoreUnavailable` when it fails: a read-only file or a full
        disk still answers reads. Health checks call it (a few times a minute at most)."""

    async def purge_expired(self, now: float) -> int:
        """Delete the link codes, web sessions, pending links, notices and recorded
        events whose expiry is at or before ``now`` (the ones every read already refuses)
        and return how many went. Reads never depend on it: it only keeps a long-running
        store from growing without bound. A store whose database expires items by itself
        (DynamoDB's TTL) may leave them to it and return 0."""


class AccountStore(Protocol):
    """Accounts: unique names, password hashes, deletion."""

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        """Create an account; raise :class:`~bot.errors.UsernameTaken` when the name is
        taken in any letter case. The name is kept as given."""

    async def get_account(self, account_id: str) -> Account | None: ...

    async def find_account(self, username: str) -> Account | None:
        """The account with this name, compared case-insensitively."""

    async def set_password_hash(self, account_id: str, password_hash: str) -> None: ...

    async def delete_account(self, account_id: str) -> None:
        """Remove the account and everything of it: identities, sessions, link codes,
        preferences and conversations; its owner is marked deleted first, for good
        (every later write for it is refused)."""


class IdentityStore(Protocol):
    """Platform identities bound to accounts (see "Linking" in the module doc)."""

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        """The link of this identity, or None for a guest."""

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        """Bind the identity to the account and, with ``move_guest_data``, move its
        guest conversations (see module doc). Re-linking to another account moves the
        binding, not the old account's data (the engine refuses it without ``/unlink``)."""

    async def unlink_identity(self, identity: Identity) -> None:
        """Unbind; the account keeps its history, the identity is a guest again."""

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        """The identities linked to the account, oldest link first."""


class LinkCodeStore(Protocol):
    """Link codes (stored by hash, with expiry) and the links waiting for consent."""

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        """Store a code of a live account. With ``max_live``, the account keeps at most
        that many live codes: the ones expiring first are deleted to make room (across
        processes too: concurrent puts never leave more)."""

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        """The account id of a live code, without consuming it."""

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        """Consume a code: return its account id once, if it exists and has not expired.
        Concurrent takes of one code give the account id to exactly one caller."""

    async def put_pending_link(self, pending: PendingLink) -> None:
        """Keep ``pending`` as its identity's one pending link (replacing an older one)."""

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        """Remove and return the identity's pending link unless it has expired;
        concurrent takes give it to exactly one caller."""


class NoticeStore(Protocol):
    """What an account's owner is told about the account."""

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        """Keep a notice for the account's owner (until ``expires_at``); deleted with
        the account."""

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        """The account's newest live notices, newest first, at most ``limit``."""


class WebSessionStore(Protocol):
    """Web sessions, stored by the hash of their token, with expiry."""

    async def put_web_session(
        self, token_hash: str, account_id: str, expires_at: float
    ) -> None: ...

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        """The session, unless it is unknown or expired."""

    async def delete_web_session(self, token_hash: str) -> None: ...

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        """Delete every web session of the account except the one whose hash is
        ``keep`` (log out everywhere else, change of password); how many went."""


class PreferenceStore(Protocol):
    """An owner's preferences (its persona above all)."""

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]: ...

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        """Set a preference; ``None`` removes it."""


class ConversationStore(PreferenceStore, Protocol):
    """What answering a message needs: who speaks, the window, appends under the
    version, lease and epoch checks, the backend's state, token usage."""

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        """The link of this identity (None for a guest) and the preferences of the owner
        it speaks for (its account, or the guest itself), read together: every message
        needs both, and a store may fetch them in one trip."""

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        """The newest ``max_turns`` turns of the current conversation, oldest first.
        Its cost must not grow with the length of the conversation."""

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        """The owner's epoch (see module doc), or None when its account was deleted."""

    async def epoch_and_window(
        self, key: ConversationKey, max_turns: int
    ) -> tuple[int | None, ConversationWindow]:
        """:meth:`owner_epoch` of the key's owner and :meth:`load_window`, in one call:
        what every message reads before it appends (a store may read both in one trip).
        The epoch is read no later than the window, so a ``/forget`` that lands after
        the epoch was read refuses every write made with it."""

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
        """Append to the current conversation (starting one if there is none) when its
        version is still ``expected_version``; else raise
        :class:`~bot.errors.VersionConflict` and store nothing. Returns the new version
        and the stored turns with their ``seq``. Raises
        :class:`~bot.errors.OwnerForgotten` (storing nothing) when the owner is deleted,
        or ``epoch`` is given and is no longer the owner's.

        ``take_lease``: also take the conversation's lease, in the same write; raise
        :class:`~bot.errors.ConversationBusy` (storing nothing) when another holder's
        lease has not expired at ``now``. ``release_lease``: free the lease if this
        holder has it (else leave it as it is), in the same write. With no ``turns``,
        only the lease changes (and the version moves on): how ``/retry`` takes it."""

    async def read_and_append(
        self,
        key: ConversationKey,
        max_turns: int,
        turns: Sequence[NewTurn],
        now: float,
        *,
        take_lease: Lease | None = None,
    ) -> tuple[int | None, ConversationWindow, int, tuple[Turn, ...]]:
        """:meth:`epoch_and_window`, then :meth:`append_turns` at that window's version
        with that epoch: what a new message does, in one trip where the store can.
        Returns the epoch, the window as it was before the append, the new version and
        the stored turns. When the owner is deleted (epoch None) nothing is appended
        (the version is the window's, no turns). Raises as ``append_turns`` does; a
        store that makes it two trips may raise :class:`~bot.errors.VersionConflict`
        (another process appended between them), one trip never does."""

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        """Free the conversation's lease if ``holder`` has it (a reply that was not
        stored: the backend failed). Nothing else changes, not even the version."""

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        """Replace the backend state and/or summary of the current conversation under the
        same version and epoch checks as ``append_turns``; returns the new version."""

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        """Add one reply's tokens to the owner's totals (atomically: concurrent adds from
        several processes all count). Deleted by ``forget_owner`` and ``delete_account``."""


class OwnerDataStore(Protocol):
    """An owner's data as a whole: resetting, totals, export, forgetting."""

    async def reset_conversation(self, key: ConversationKey) -> None:
        """Archive the current conversation of the key (a no-op when there is none)."""

    async def get_usage(self, owner: OwnerId) -> Usage:
        """The owner's totals; zeros when nothing was recorded."""

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        """Every conversation of the owner, current and archived, with all turns."""

    async def forget_owner(self, owner: OwnerId) -> None:
        """Delete every conversation, preference and usage total of the owner, after
        moving its epoch on (so that writes already under way are refused)."""


class EventStore(Protocol):
    """Platform events recorded once, and the inbox (see the module doc)."""

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
        """Record an event id (until ``expires_at``); True for exactly one of the
        callers that record the same unexpired id. With ``payload``, a first record also
        enters the inbox, held by the caller until ``hold_until``."""

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        """Up to ``limit`` inbox entries of ``source`` whose hold has lapsed at ``now``,
        each now held by the caller until ``hold_until`` (no two callers get one entry
        while it is held)."""

    async def finish_inbox(self, source: str, event_id: str) -> None:
        """Take an answered event out of the inbox (its id stays recorded until expiry)."""


# -- who uses what ------------------------------------------------------------------------


class CommandStore(ConversationStore, OwnerDataStore, AccountStore, Protocol):
    """What the chat commands need (``/reset``, ``/forget``, ``/whoami``, ``/persona``...)."""


class LinkingStore(
    AccountStore, IdentityStore, LinkCodeStore, NoticeStore, PreferenceStore, Protocol
):
    """What linking an identity to an account needs: codes, consent, notices."""


class AuthStore(LinkingStore, WebSessionStore, OwnerDataStore, Protocol):
    """What ``auth/`` needs: accounts, passwords, web sessions, the account page (its
    link codes, identities and notices), export."""


@runtime_checkable
class Store(
    StoreUpkeep,
    ConversationStore,
    OwnerDataStore,
    AccountStore,
    IdentityStore,
    LinkCodeStore,
    NoticeStore,
    WebSessionStore,
    EventStore,
    Protocol,
):
    """Persistence for accounts, identities, codes, sessions, preferences and
    conversations: every area (see "Who needs what" in the module doc). The wiring
    opens one and hands each part the narrower protocol it needs."""


async def read_then_append(
    store: ConversationStore,
    key: ConversationKey,
    max_turns: int,
    turns: Sequence[NewTurn],
    now: float,
    take_lease: Lease | None,
) -> tuple[int | None, ConversationWindow, int, tuple[Turn, ...]]:
    """:meth:`ConversationStore.read_and_append` in two trips, for a store that cannot
    make it one: the append's version check refuses it (``VersionConflict``) when
    another process appended in between."""
    epoch, window = await store.epoch_and_window(key, max_turns)
    if epoch is None:
        return None, window, window.version, ()
    version, stored = await store.append_turns(
        key, turns, window.version, now, take_lease=take_lease, epoch=epoch
    )
    return epoch, window, version, stored
