"""The conversation items' shapes: META as a :class:`Head`, turns, windows, conditions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from bot.errors import StoreError
from bot.messages import ConversationKey, Role, Turn, attachments_from_json, attachments_json
from bot.store.base import ConversationWindow
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Item, Wire, integer, number, optional_text, text, values


@dataclass(frozen=True, slots=True)
class Head:
    """What a key's META item says; version 0 means it has none. ``cid`` is the current
    conversation (None: there is none), ``last_seq`` its newest turn, ``generations``
    how many conversations the key has started; ``lease_holder`` and ``lease_until`` the
    conversation's lease (:mod:`bot.leases`), if any."""

    version: int = 0
    generations: int = 0
    cid: str | None = None
    last_seq: int = 0
    lease_holder: str | None = None
    lease_until: float | None = None

    @classmethod
    def of(cls, meta: Item | None) -> Head:
        if meta is None:
            return cls()
        holder = optional_text(meta, "lease_holder")
        return cls(
            integer(meta, "version", 0),
            integer(meta, "gens", 0),
            optional_text(meta, "cid"),
            integer(meta, "last_seq", 0),
            holder,
            number(meta, "lease_until") if holder is not None else None,
        )


def turn_of(item: Item) -> Turn:
    role = text(item, "role")
    if role not in ("user", "assistant"):
        raise StoreError(f"DynamoDB turn has an unknown role {role!r}")
    role_: Role = "user" if role == "user" else "assistant"
    reply_to = item.get("reply_to")  # absent on turns stored before replies recorded it
    return Turn(
        integer(item, "seq"), role_, text(item, "text"), text(item, "author"),
        number(item, "created_at"), integer(item, "reply_to") if reply_to is not None else None,
        attachments_from_json(optional_text(item, "files")),
    )  # fmt: skip


def turn_fields(turn: Turn) -> dict[str, object]:
    fields: dict[str, object] = {
        "seq": turn.seq,
        "role": turn.role,
        "text": turn.text,
        "author": turn.author,
        "created_at": turn.created_at,
    }
    if turn.reply_to is not None:
        fields["reply_to"] = turn.reply_to
    if turn.attachments:  # metadata and text only (a JSON string): never the bytes
        fields["files"] = attachments_json(turn.attachments)
    return fields


def turn_item(key: ConversationKey, cid: str, turn: Turn) -> dict[str, object]:
    return {**keys.turn(key, cid, turn.seq), **turn_fields(turn)}


def last_turn_of(meta: Item | None) -> Turn | None:
    """The copy of the current conversation's newest turn that META carries."""
    found = meta.get("last_turn") if meta is not None else None
    return turn_of(cast(Item, found)) if isinstance(found, dict) else None


def window_of(meta: Item | None, turns: Sequence[Turn]) -> ConversationWindow:
    head = Head.of(meta)
    if meta is None or head.cid is None:
        return ConversationWindow(head.version)
    state = optional_text(meta, "state")
    return ConversationWindow(
        head.version,
        tuple(turns),
        json.loads(state) if state else {},
        optional_text(meta, "summary") or "",
    )


def version_condition(head: Head) -> tuple[str, Wire]:
    """The condition that META is still exactly ``head``."""
    if head.version == 0:
        return "attribute_not_exists(version)", {}
    if head.cid is None:
        return "version = :v AND attribute_not_exists(cid)", values(v=head.version)
    condition = "version = :v AND cid = :cid AND last_seq = :seq"
    return condition, values(v=head.version, cid=head.cid, seq=head.last_seq)
