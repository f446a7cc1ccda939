"""Moving a guest's conversations to the account it links to (preferences stay: the
account's own win, and the guest keeps its own).

DynamoDB cannot rename keys, so a guest's conversations are copied into the account's
partitions and then handed over, one conversation at a time, by a transaction that
creates the account's ``RECORD`` item and deletes the guest's (a conversation exists
where its record is). Each step can be repeated: the copied turns have fixed keys, and a
conversation whose guest record is gone has been moved. Copied turns without a record
(an interrupted link) are never read (only records are exported, only META's current
conversation is windowed) and go with the partition on ``/forget``.

The guest's current conversation becomes the account's current one when the account
has no turns there yet: it gets a fresh generation of the account key (reserved first,
which bumps the key's version so a conversation started meanwhile conflicts), and META
points at it in the hand-over transaction, whose version condition fails if the account
got turns meanwhile (the conversation is then archived instead). Otherwise, and for the
guest's archived conversations, it is archived under ``A<uid>`` ids, which sort below
every current conversation. The guest's META is kept with its version bumped, so that a
guest key's versions never go back either.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages import ConversationKey, OwnerId, Turn
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Item, Wire, from_wire, integer, text, values
from bot.store.dynamo.conversations import Conversations, slot_item
from bot.store.dynamo.items import Head, turn_item, turn_of
from bot.store.dynamo.table import Cancelled, Table

#: Times a slot is planned again when its guest conversation changes while moving.
MOVE_ATTEMPTS = 4
_TOMBSTONE = (
    "SET version = version + :one, last_seq = :zero REMOVE cid, #state, summary, last_turn",
    {"#state": "state"},
)


class GuestChanged(Exception):
    """The guest's conversation changed while it was being moved: plan again."""


class GuestMover:
    """Moves the data of one guest owner to one account owner."""

    def __init__(
        self, table: Table, conversations: Conversations, guest: OwnerId, owner: OwnerId
    ) -> None:
        self._table = table
        self._conversations = conversations
        self._guest = guest
        self._owner = owner

    async def move(self) -> None:
        # a guest's partition holds only its preferences, usage and conversation index
        index = await self._table.query(
            None,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=values(pk=keys.owner_pk(self._guest)),
        )
        try:
            for slot in (item for item in index if _sk(item).startswith(keys.SLOT)):
                persona_id, scope = text(slot, "persona_id"), text(slot, "scope")
                for attempt in range(MOVE_ATTEMPTS):
                    try:
                        await self._move_slot(persona_id, scope)
                        break
                    except GuestChanged:
                        if attempt + 1 == MOVE_ATTEMPTS:
                            raise
        finally:
            self._conversations.recent.forget(self._guest)
            self._conversations.recent.forget(self._owner)

    async def _move_slot(self, persona_id: str, scope: str) -> None:
        source = ConversationKey(self._guest, persona_id, scope)
        target = ConversationKey(self._owner, persona_id, scope)
        items = await self._conversations.partition(source)
        meta = items[-1] if items and items[-1].get(keys.SK) == keys.META else None
        guest = Head.of(meta)
        records = {text(i, "cid"): i for i in items if _sk(i).startswith(keys.RECORD)}
        if not records:
            return
        turns: dict[str, list[Turn]] = {}
        for item in items:
            split = keys.split_turn_sk(_sk(item))
            if split is not None and (split[0] != guest.cid or split[1] <= guest.last_seq):
                turns.setdefault(split[0], []).append(turn_of(item))
        await self._table.put(slot_item(target))
        for cid, record in records.items():
            if cid != guest.cid:
                await self._archive(source, target, record, turns.get(cid, []), None)
        current = records.get(guest.cid) if guest.cid is not None else None
        if current is not None and meta is not None:
            current_turns = turns.get(text(current, "cid"), [])
            if not await self._adopt(source, target, current, current_turns, meta):
                await self._archive(source, target, current, current_turns, guest)
        moved = [keys.turn(source, cid, turn.seq) for cid in records for turn in turns.get(cid, [])]
        await self._table.batch_write(deletes=moved)

    async def _archive(
        self,
        source: ConversationKey,
        target: ConversationKey,
        record: Item,
        turns: Sequence[Turn],
        guest: Head | None,
    ) -> None:
        """Copy a conversation into the target as an archived one; ``guest`` is the
        source's head when it is the source's current conversation."""
        cid = keys.imported_cid(text(record, "uid"))
        await self._table.batch_write(puts=[turn_item(target, cid, t) for t in turns])
        actions = [
            self._table.put_action(_record_item(target, cid, record)),
            self._table.delete_action(
                keys.record(source, text(record, "cid")),
                ConditionExpression="attribute_exists(PK)",
            ),
        ]
        if guest is not None:
            actions.append(self._tombstone(source, guest))
        try:
            await self._table.transact(actions)
        except Cancelled as cancelled:
            if cancelled.failed(1):
                return  # moved already, by a link running elsewhere
            if cancelled.failed(2):
                raise GuestChanged from cancelled
            raise

    async def _adopt(
        self,
        source: ConversationKey,
        target: ConversationKey,
        record: Item,
        turns: list[Turn],
        source_meta: Item,
    ) -> bool:
        """Make the source's current conversation the target's current one, if the
        target has no turns; False when it has (then nothing changed but its version)."""
        response = await self._table.update(
            keys.meta(target),
            UpdateExpression="SET gens = if_not_exists(gens, :zero) + :one,"
            " version = if_not_exists(version, :zero) + :one,"
            " #owner = :owner, persona_id = :persona, #scope = :scope",
            ExpressionAttributeNames={"#owner": "owner", "#scope": "scope"},
            ExpressionAttributeValues=values(
                zero=0, one=1, owner=target.owner, persona=target.persona_id, scope=target.scope
            ),
            ReturnValues="ALL_NEW",
        )
        reserved = Head.of(from_wire(response["Attributes"]))
        if reserved.cid is not None and reserved.last_seq > 0:
            return False
        guest = Head.of(source_meta)
        cid = keys.native_cid(reserved.generations, text(record, "uid"))
        staged = [turn_item(target, cid, t) for t in turns if t.seq <= guest.last_seq]
        await self._table.batch_write(puts=staged)
        sets: dict[str, object] = {
            "version": max(guest.version, reserved.version) + 1,
            "cid": cid,
            "last_seq": guest.last_seq,
        }
        removes = []
        for name in ("state", "summary", "last_turn"):  # they go with the conversation
            if name in source_meta:
                sets[name] = source_meta[name]
            else:
                removes.append(name)
        names = {f"#s{n}": name for n, name in enumerate(sets)}
        names |= {f"#r{n}": name for n, name in enumerate(removes)}
        expression = "SET " + ", ".join(f"#s{n} = :s{n}" for n in range(len(sets)))
        if removes:
            expression += " REMOVE " + ", ".join(f"#r{n}" for n in range(len(removes)))
        actions = [
            self._table.update_action(
                keys.meta(target),
                UpdateExpression=expression,
                ConditionExpression="version = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(v=reserved.version)
                | values(**{f"s{n}": value for n, value in enumerate(sets.values())}),
            ),
            self._table.put_action(_record_item(target, cid, record)),
            self._table.delete_action(
                keys.record(source, text(record, "cid")),
                ConditionExpression="attribute_exists(PK)",
            ),
            self._tombstone(source, guest),
        ]
        try:
            await self._table.transact(actions)
        except Cancelled as cancelled:
            # the staged turns sort above the target's current ones: take them away
            await self._table.batch_write(deletes=[_key_of(item) for item in staged])
            if cancelled.failed(0):
                return False
            if cancelled.failed(2) or cancelled.failed(3):
                raise GuestChanged from cancelled
            raise
        return True

    def _tombstone(self, source: ConversationKey, guest: Head) -> Wire:
        expression, names = _TOMBSTONE
        return self._table.update_action(
            keys.meta(source),
            UpdateExpression=expression,
            ConditionExpression="version = :v",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values(v=guest.version, one=1, zero=0),
        )


#: Each preference is a top-level attribute of the owner's PREFS item: ``p:<name>``.
PREF = "p:"


def preferences_of(item: Item | None) -> dict[str, str]:
    if item is None:
        return {}
    return {
        name[len(PREF) :]: value
        for name, value in item.items()
        if name.startswith(PREF) and isinstance(value, str)
    }


def _sk(item: Item) -> str:
    return str(item.get(keys.SK, ""))


def _key_of(item: dict[str, object]) -> keys.Key:
    return keys.key(str(item[keys.PK]), str(item[keys.SK]))


def _record_item(conversation: ConversationKey, cid: str, source: Item) -> dict[str, object]:
    return {
        **keys.record(conversation, cid),
        "cid": cid,
        "uid": text(source, "uid"),
        "created": integer(source, "created"),
        "started_at": source.get("started_at"),
        "persona_id": conversation.persona_id,
        "scope": conversation.scope,
    }
