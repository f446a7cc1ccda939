"""The ``Store`` protocol: everything PersonaBridge persists, in small intention-named calls.

Every implementation (``MemoryStore``, ``SqliteStore``, later ``DynamoStore``) passes the
one contract suite in ``tests/store/test_contract.py``. Times are Unix seconds (float)
passed in by the caller, so tests control the clock and expiry is checked on every read.

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
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, Turn

#: A backend's per-conversation state; must be JSON-serialisable.
BackendState = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    username: str
    password_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class LinkedIdentity:
    """A platform identity bound to an account."""

    platform: str
    user_id: str
    display_name: str
    account_id: str
    linked_at: float

    @property
    def identity(self) -> Identity:
        return Identity(self.platform, self.user_id)


@dataclass(frozen=True, slots=True)
class PendingLink:
    """A ``/link CODE`` waiting for the confirmation of the identity that sent it."""

    identity: Identity
    account_id: str
    code_hash: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing the account's owner was told about the account."""

    created_at: float
    text: str


@dataclass(frozen=True, slots=True)
class WebSession:
    account_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ConversationWindow:
    """The recent end of the current conversation of a key.

    ``turns`` are oldest first and hold at most the requested number. ``version`` is
    what ``append_turns`` expects next; 0 means the key has never had a conversation.
    """

    version: int
    turns: tuple[Turn, ...] = ()
    backend_state: BackendState = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """A conversation taken by one worker (``holder``, unique per message) until
    ``until`` (Unix seconds)."""

    holder: str
    until: float


def lease_blocks(
    held_by: str | None, held_until: float | None, take: Lease | None, now: float
) -> bool:
    """Whether a lease held by ``held_by`` until ``held_until`` stops ``take`` at ``now``:
    another holder's lease that has not expired does."""
    if take is None or held_by is None or held_by == take.holder:
        return False
    return held_until is not None and held_until > now


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A platform event acknowledged but not yet answered (see ``claim_event``)."""

    source: str
    event_id: str
    payload: str
    received_at: float


@dataclass(frozen=True, slots=True)
class Usage:
    """What an owner's replies cost in backend tokens (backends that report them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    replies: int = 0


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """One whole conversation, for export."""

    persona_id: str
    scope: str
    archived: bool
    started_at: float
    turns: tuple[Turn, ...]


@runtime_checkable
class Store(Protocol):
    """Persistence for accounts, identities, codes, sessions, preferences and conversations.

    A store is an async context manager: ``async with store:`` opens its connection (and
    prepares its schema) and closes it again.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~bot.errors.StoreUnavailable` when the store cannot be used."""

    async def probe_write(self) -> None:
        """Make one small real write (committed), raising
        :class:`~bot.errors.StoreUnavailable` when it fails: a read-only file or a full
        disk still answers reads. Health checks call it (a few times a minute at most)."""

    # -- accounts ---------------------------------------------------------------------

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

    # -- identities -------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        """The link of this identity, or None for a guest."""

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        """The link of this identity (None for a guest) and the preferences of the owner
        it speaks for (its account, or the guest itself), read together: every message
        needs both, and a store may fetch them in one trip."""

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

    # -- link codes and web sessions (stored by hash, with expiry) -------------------

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

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        """Keep a notice for the account's owner (until ``expires_at``); deleted with
        the account."""

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        """The account's newest live notices, newest first, at most ``limit``."""

    async def put_web_session(
        self, token_hash: str, account_id: str, expires_at: float
    ) -> None: ...

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        """The session, unless it is unknown or expired."""

    async def delete_web_session(self, token_hash: str) -> None: ...

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        """Delete every web session of the account except the one whose hash is
        ``keep`` (log out everywhere else, change of password); how many went."""

    async def purge_expired(self, now: float) -> int:
        """Delete the link codes, web sessions, pending links, notices and recorded
        events whose expiry is at or before ``now`` (the ones every read already refuses)
        and return how many went. Reads never depend on it: it only keeps a long-running
        store from growing without bound. A store whose database expires items by itself
        (DynamoDB's TTL) may leave them to it and return 0."""

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]: ...

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        """Set a preference; ``None`` removes it."""

    # -- conversations ----------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        """The newest ``max_turns`` turns of the current conversation, oldest first.
        Its cost must not grow with the length of the conversation."""

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        """The owner's epoch (see module doc), or None when its account was deleted."""

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

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        """Free the conversation's lease if ``holder`` has it (a reply that was not
        stored: the backend failed). Nothing else changes, not even the version."""

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

    async def reset_conversation(self, key: ConversationKey) -> None:
        """Archive the current conversation of the key (a no-op when there is none)."""

    # -- token usage ------------------------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        """Add one reply's tokens to the owner's totals (atomically: concurrent adds from
        several processes all count). Deleted by ``forget_owner`` and ``delete_account``."""

    async def get_usage(self, owner: OwnerId) -> Usage:
        """The owner's totals; zeros when nothing was recorded."""

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        """Every conversation of the owner, current and archived, with all turns."""

    async def forget_owner(self, owner: OwnerId) -> None:
        """Delete every conversation, preference and usage total of the owner, after
        moving its epoch on (so that writes already under way are refused)."""
