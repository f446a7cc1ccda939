"""Where every item of the DynamoDB single-table design lives: its ``PK`` and ``SK``.

See :mod:`bot.store.dynamo` for the layout as a whole. Every variable part of a key
goes through :func:`part`, which escapes ``%`` and ``#``, so that keys built from
different values never collide (a persona id or a platform user id may contain ``#``).
"""

from __future__ import annotations

from typing import Final

from bot.messages import ConversationKey, Identity, OwnerId

PK: Final = "PK"
SK: Final = "SK"
#: The table's TTL attribute (epoch seconds): DynamoDB deletes expired items eventually;
#: every read checks it itself.
TTL: Final = "expires_at"

#: The sort key of a conversation's META item: after every ``TURN#`` item, so that one
#: descending Query returns META first and then the newest turns.
META: Final = "~META"
TURN: Final = "TURN#"
RECORD: Final = "RECORD#"

ACCOUNT: Final = "ACCOUNT"
IDENTITY: Final = "IDENTITY"
LINKCODE: Final = "LINKCODE"
WEBSESSION: Final = "WEBSESSION"
PREFS: Final = "PREFS"
USAGE: Final = "USAGE"
SLOT: Final = "SLOT#"
EPOCH: Final = "EPOCH"

#: A sequence number's width in a sort key (zero-padded, so strings sort as numbers).
SEQ_WIDTH: Final = 10

Key = dict[str, str]


def part(value: str) -> str:
    """One variable component of a key, with ``%`` and ``#`` escaped."""
    return value.replace("%", "%25").replace("#", "%23")


def key(pk: str, sk: str) -> Key:
    return {PK: pk, SK: sk}


def account_name(username: str) -> Key:
    """The item that reserves a username (case-insensitively) for one account."""
    return key(f"ACCOUNT#{part(username.casefold())}", ACCOUNT)


def owner_pk(owner: OwnerId) -> str:
    """The partition of everything kept per owner: account record, preferences, usage,
    and index items pointing at the owner's conversations, identities, codes, sessions."""
    return f"OWNER#{part(owner)}"


def epoch(owner: OwnerId) -> Key:
    """The owner's epoch and tombstone: a partition of its own, which no sweep of the
    owner's partition deletes."""
    return key(f"{EPOCH}#{part(owner)}", EPOCH)


def account_record(account_id: str) -> Key:
    return key(owner_pk(OwnerId(f"account:{account_id}")), ACCOUNT)


def preferences(owner: OwnerId) -> Key:
    return key(owner_pk(owner), PREFS)


def usage(owner: OwnerId) -> Key:
    return key(owner_pk(owner), USAGE)


def slot_index(owner: OwnerId, persona_id: str, scope: str) -> Key:
    return key(owner_pk(owner), f"{SLOT}{part(persona_id)}#{part(scope)}")


def identity_sk(identity: Identity) -> str:
    return f"{IDENTITY}#{part(identity.platform)}#{part(identity.user_id)}"


def identity(identity: Identity) -> Key:
    return key(identity_sk(identity), IDENTITY)


def identity_index(account_id: str, linked: Identity) -> Key:
    return key(owner_pk(OwnerId(f"account:{account_id}")), identity_sk(linked))


def link_code(code_hash: str) -> Key:
    return key(f"{LINKCODE}#{part(code_hash)}", LINKCODE)


def web_session(token_hash: str) -> Key:
    return key(f"{WEBSESSION}#{part(token_hash)}", WEBSESSION)


def account_index(account_id: str, main: Key) -> Key:
    """The index item, in the account's partition, of a link code or web session."""
    return key(owner_pk(OwnerId(f"account:{account_id}")), main[PK])


def conversation_pk(conversation: ConversationKey) -> str:
    return (
        f"CONV#{part(conversation.owner)}#{part(conversation.persona_id)}"
        f"#{part(conversation.scope)}"
    )


def meta(conversation: ConversationKey) -> Key:
    return key(conversation_pk(conversation), META)


def record(conversation: ConversationKey, cid: str) -> Key:
    return key(conversation_pk(conversation), f"{RECORD}{cid}")


def turn_prefix(cid: str) -> str:
    return f"{TURN}{cid}#"


def turn_sk(cid: str, seq: int) -> str:
    return f"{turn_prefix(cid)}{seq:0{SEQ_WIDTH}d}"


def turn(conversation: ConversationKey, cid: str, seq: int) -> Key:
    return key(conversation_pk(conversation), turn_sk(cid, seq))


def native_cid(generation: int, uid: str) -> str:
    """The id of the key's ``generation``-th conversation: later ones sort higher, so
    the current conversation's turns are always the newest ``TURN#`` items. The
    conversation's random ``uid`` makes it unique for good (a key's generations start
    again after ``/forget``), so a turn's key is never reused for other text."""
    return f"G{generation:0{SEQ_WIDTH}d}-{uid}"


def imported_cid(uid: str) -> str:
    """The id of an archived conversation moved in from a guest by linking: ``A`` sorts
    below ``G``, so imported turns never come between META and the current turns."""
    return f"A{uid}"


def split_turn_sk(sk: str) -> tuple[str, int] | None:
    """``(cid, seq)`` of a turn's sort key; None for any other item."""
    if not sk.startswith(TURN):
        return None
    cid, _, seq = sk[len(TURN) :].rpartition("#")
    return cid, int(seq)
