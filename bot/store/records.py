"""The values a store hands out and takes in (see :mod:`bot.store.base` for the rules).

Frozen dataclasses: the core sees only these, never a row or an item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.messages import Identity, Turn

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
