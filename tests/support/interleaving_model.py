"""A reference model of what the store must hold after any run of messages and commands.

It is written from the documented rules (``bot/store/base.py``, ``bot/commands.py``,
ARCHITECTURE.md), not from the implementations, so that the property tests can compare
every stored conversation with it:

- a conversation belongs to ``(owner, persona, scope)``; a chat message appends the
  user's turn and the reply to the current conversation of that key;
- ``/reset`` archives the current conversation (kept until ``/forget``) and starts the
  next one with the persona's greeting, as ``/persona ID`` does an empty one;
- ``/forget`` then ``/forget confirm`` (within the confirmation time) deletes every
  conversation and preference of the owner;
- ``/link CODE`` only asks: the identity gets a pending link (for the code's account)
  that ``/link confirm`` from the same identity, within the confirmation time, turns
  into a link, consuming the code then (an account holds at most
  :data:`MAX_LIVE_CODES` codes, the oldest going first); ``/link cancel`` drops it; a
  linked identity is never re-bound (``/unlink`` first);
- a link binds the identity to the account; with ``/link confirm move`` it also moves
  the guest data: per ``(persona, scope)`` the guest's current conversation becomes the
  account's current one when the account has none there, else it is kept archived.
  Preferences never move, and the account's pending ``/forget`` is cancelled;
- ``/unlink`` unbinds: the identity is a guest again, with its old guest data.

Every chat text carries a unique token (``tok-<n>``); the model knows which owner each
token belongs to, so a token found anywhere else is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.messages import ConversationKey, Identity, OwnerId, account_owner, guest_owner

TOKEN = re.compile(r"tok-\d+")
PERSONA_PREFERENCE = "persona"
FORGET_PREFERENCE = "forget_requested_at"
MAX_LIVE_CODES = 5

#: ``(role, text, author)``: a turn as the model compares it.
ModelTurn = tuple[str, str, str]
#: ``(persona id, scope)``: a conversation key within one owner.
Slot = tuple[str, str]
#: A slot's current conversation ([] when none) and its archived ones, sorted.
Expected = tuple[list[ModelTurn], list[list[ModelTurn]]]


def tokens_in(text: str) -> list[str]:
    return TOKEN.findall(text)


def echo(text: str, seen: Iterable[str]) -> str:
    """What ``tests.fakes.WindowEcho`` answers to ``text`` after the user turns ``seen``."""
    return f"re:{text} saw:[{'|'.join(seen)}]"


def user_texts(turns: Iterable[ModelTurn]) -> list[str]:
    return [text for role, text, _ in turns if role == "user"]


@dataclass
class ModelConversation:
    turns: list[ModelTurn] = field(default_factory=list)
    archived: bool = False


@dataclass
class Model:
    """What every owner's conversations, preferences and links must be."""

    default_persona: str
    conversations: dict[OwnerId, dict[Slot, list[ModelConversation]]] = field(default_factory=dict)
    preferences: dict[OwnerId, dict[str, str]] = field(default_factory=dict)
    links: dict[Identity, str] = field(default_factory=dict)
    #: normalised code -> (account id, expires at); a code leaves when a confirmation
    #: tries it, or when its account makes too many
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: identity -> (normalised code, account id, expires at): a /link waiting for /link confirm
    pending: dict[Identity, tuple[str, str, float]] = field(default_factory=dict)
    #: who each token typed so far belongs to; forgotten tokens are removed
    token_owner: dict[str, OwnerId] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)

    # -- who speaks --------------------------------------------------------------------

    def owner_of(self, identity: Identity, account_id: str | None) -> OwnerId:
        if account_id is not None:
            return account_owner(account_id)
        linked = self.links.get(identity)
        return account_owner(linked) if linked else guest_owner(identity)

    def persona_of(self, owner: OwnerId) -> str:
        return self.preferences.get(owner, {}).get(PERSONA_PREFERENCE, self.default_persona)

    def current(self, key: ConversationKey) -> ModelConversation | None:
        slot = self.conversations.get(key.owner, {}).get((key.persona_id, key.scope), [])
        return slot[-1] if slot and not slot[-1].archived else None

    def current_turns(self, key: ConversationKey) -> list[ModelTurn]:
        current = self.current(key)
        return list(current.turns) if current else []

    # -- chat --------------------------------------------------------------------------

    def chat(self, key: ConversationKey, text: str, author: str, persona_name: str) -> str:
        """Store a message and its reply; return the reply the backend must have written."""
        reply = echo(text, user_texts(self.current_turns(key)))
        self.append(key, [("user", text, author), ("assistant", reply, persona_name)])
        for token in tokens_in(text):
            self.token_owner[token] = key.owner
        return reply

    def retry(self, key: ConversationKey, persona_name: str) -> str | None:
        """The reply ``/retry`` must write (and store), or None when there is nothing."""
        turns = self.current_turns(key)
        last = max((i for i, turn in enumerate(turns) if turn[0] == "user"), default=None)
        if last is None:
            return None
        reply = echo(turns[last][1], user_texts(turns[:last]))
        self.append(key, [("assistant", reply, persona_name)])
        return reply

    def append(self, key: ConversationKey, turns: list[ModelTurn]) -> None:
        current = self.current(key)
        if current is None:
            current = ModelConversation()
            slots = self.conversations.setdefault(key.owner, {})
            slots.setdefault((key.persona_id, key.scope), []).append(current)
        current.turns.extend(turns)

    def replace_current(self, key: ConversationKey, turns: list[ModelTurn]) -> None:
        """After a concurrent batch: the order the store chose (checked by the caller)."""
        current = self.current(key)
        if current is None:
            self.append(key, turns)
        else:
            current.turns[:] = turns

    # -- commands ----------------------------------------------------------------------

    def reset(self, key: ConversationKey) -> None:
        current = self.current(key)
        if current is not None:
            current.archived = True

    def greet(self, key: ConversationKey, greeting: str, persona_name: str) -> None:
        """``/reset`` and ``/persona`` start an empty conversation with the greeting."""
        if not self.current_turns(key):
            self.append(key, [("assistant", greeting, persona_name)])

    def set_preference(self, owner: OwnerId, name: str, value: str) -> None:
        self.preferences.setdefault(owner, {})[name] = value

    def forget(self, owner: OwnerId) -> None:
        self.conversations.pop(owner, None)
        self.preferences.pop(owner, None)
        gone = [token for token, holder in self.token_owner.items() if holder == owner]
        for token in gone:
            del self.token_owner[token]
        self.forgotten.update(gone)

    def add_code(self, code: str, account_id: str, expires_at: float) -> None:
        """A new code; the account's codes expiring first go to keep it within the cap."""
        theirs = sorted((e, c) for c, (a, e) in self.codes.items() if a == account_id)
        for _, old in theirs[: max(0, len(theirs) - MAX_LIVE_CODES + 1)]:
            del self.codes[old]
        self.codes[code] = (account_id, expires_at)

    def peek_code(self, code: str, now: float) -> str | None:
        account_id, expires_at = self.codes.get(code, ("", 0.0))
        return account_id if expires_at > now else None

    def take_code(self, code: str, now: float) -> str | None:
        account_id, expires_at = self.codes.pop(code, ("", 0.0))
        return account_id if expires_at > now else None

    def unlink(self, identity: Identity) -> None:
        self.links.pop(identity, None)

    def link(self, identity: Identity, account_id: str, *, move: bool) -> None:
        self.links[identity] = account_id
        guest, owner = guest_owner(identity), account_owner(account_id)
        if move:
            self._move(guest, owner)
        # /link cancels a pending /forget: it was asked for less than the account holds now
        prefs = self.preferences.get(owner)
        if prefs is not None:
            prefs.pop(FORGET_PREFERENCE, None)
            if not prefs:
                del self.preferences[owner]

    def _move(self, guest: OwnerId, owner: OwnerId) -> None:
        moving = self.conversations.pop(guest, {})
        target = self.conversations.setdefault(owner, {})
        for slot, conversations in moving.items():
            there = target.setdefault(slot, [])
            theirs = there[-1] if there and not there[-1].archived else None
            archived = [c for c in conversations if c.archived]
            current = [c for c in conversations if not c.archived]
            if theirs is not None:
                for conversation in current:
                    conversation.archived = True
                there[:-1] = there[:-1] + archived + current
            else:
                there.extend(archived + current)
        for token, holder in self.token_owner.items():
            if holder == guest:
                self.token_owner[token] = owner

    # -- what the store must hold ------------------------------------------------------

    def expected_export(self, owner: OwnerId) -> dict[Slot, Expected]:
        """Per slot: the current conversation's turns ([] when none) and the archived
        ones, sorted (the store's order of archived conversations is not a contract)."""
        expected: dict[Slot, Expected] = {}
        for slot, conversations in self.conversations.get(owner, {}).items():
            if not conversations:
                continue
            current = [c.turns for c in conversations if not c.archived]
            archived = sorted(c.turns for c in conversations if c.archived)
            expected[slot] = (current[0] if current else [], archived)
        return expected
