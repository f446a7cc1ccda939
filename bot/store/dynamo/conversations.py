"""Conversations on DynamoDB: windows, appends under a version check, state, reset, export.

One partition per conversation key holds its ``~META`` item, one ``RECORD#<cid>`` item
per conversation the key has had (current and archived) and their ``TURN#<cid>#<seq>``
items (see :mod:`bot.store.dynamodb`). Every write goes through META's version (and
current cid and last seq) condition, so several processes never interleave or lose
turns. What this process last saw of each key (:class:`Head`) is kept, so an append
needs no read first; it is only ever a guess that the condition checks.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar, cast

from bot.errors import StoreError, VersionConflict
from bot.messages import ConversationKey, NewTurn, OwnerId, Role, Turn
from bot.store.base import ConversationRecord, ConversationWindow
from bot.store.dynamo import keys
from bot.store.dynamo.codec import (
    Item,
    Wire,
    from_wire,
    integer,
    number,
    optional_text,
    text,
    values,
)
from bot.store.dynamo.table import Cancelled, ConditionFailed, Table

K = TypeVar("K")
V = TypeVar("V")

#: Most turns one append may carry: they and META go in one transaction (<= 100 items).
MAX_APPEND: Final = 90
#: Turns beyond the last known one that a prefetch also asks for, so that a turn or two
#: appended meanwhile by another process still leaves the prefetched window usable.
PREFETCH_SLACK: Final = 2
#: How long a prefetched window may wait for its ``load_window`` (seconds).
PREFETCH_TTL: Final = 5.0


class Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._capacity <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def drop_where(self, doomed: Callable[[K, V], bool]) -> None:
        for key in [k for k, v in self._entries.items() if doomed(k, v)]:
            del self._entries[key]


@dataclass(frozen=True, slots=True)
class Head:
    """What a key's META item says; version 0 means it has none."""

    version: int = 0
    generations: int = 0
    cid: str | None = None
    last_seq: int = 0

    @classmethod
    def of(cls, meta: Item | None) -> Head:
        if meta is None:
            return cls()
        return cls(
            integer(meta, "version", 0),
            integer(meta, "gens", 0),
            optional_text(meta, "cid"),
            integer(meta, "last_seq", 0),
        )


@dataclass(frozen=True, slots=True)
class Prefetch:
    """META and some turns of a key, read along with an identity (see ``plan``)."""

    key: ConversationKey
    cid: str | None
    first: int
    last: int
    at: float
    meta: Item | None = None
    turns: dict[int, Turn] = field(default_factory=dict)


def turn_of(item: Item) -> Turn:
    role = text(item, "role")
    if role not in ("user", "assistant"):
        raise StoreError(f"DynamoDB turn has an unknown role {role!r}")
    role_: Role = "user" if role == "user" else "assistant"
    return Turn(
        integer(item, "seq"), role_, text(item, "text"), text(item, "author"),
        number(item, "created_at"),
    )  # fmt: skip


def turn_fields(turn: Turn) -> dict[str, object]:
    return {
        "seq": turn.seq,
        "role": turn.role,
        "text": turn.text,
        "author": turn.author,
        "created_at": turn.created_at,
    }


def turn_item(key: ConversationKey, cid: str, turn: Turn) -> dict[str, object]:
    return {**keys.turn(key, cid, turn.seq), **turn_fields(turn)}


def last_turn_of(meta: Item | None) -> Turn | None:
    """The copy of the newest turn that META carries (see ``Conversations.append``)."""
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


class Conversations:
    """The conversation half of :class:`~bot.store.dynamodb.DynamoStore`."""

    def __init__(self, table: Table, cache_size: int) -> None:
        self._table = table
        self._heads: Lru[ConversationKey, Head] = Lru(cache_size)
        self._last_key: Lru[OwnerId, ConversationKey] = Lru(cache_size)
        self._prefetched: dict[ConversationKey, Prefetch] = {}
        self._window_turns = 0  # the largest window asked for lately: what to prefetch

    def forget_cached(self, owner: OwnerId) -> None:
        """Drop what this process knows of the owner's keys (they changed wholesale)."""
        self._heads.drop_where(lambda k, _: k.owner == owner)
        self._last_key.pop(owner)
        for key in [k for k in self._prefetched if k.owner == owner]:
            del self._prefetched[key]

    def _seen(self, key: ConversationKey, head: Head) -> None:
        self._heads.put(key, head)
        self._last_key.put(key.owner, key)

    # -- reading a window -------------------------------------------------------------

    def plan_prefetch(self, owner: OwnerId) -> Prefetch | None:
        """What to read along with an identity that spoke for ``owner`` here before: its
        last key's META and the turns its next window will need, if this process last
        saw them. ``load_window`` uses them only if META shows they are the window."""
        key = self._last_key.get(owner)
        if key is None:
            return None
        head = self._heads.get(key) or Head()
        wanted = self._window_turns
        if head.cid is None or head.last_seq == 0 or wanted + PREFETCH_SLACK + 3 > 100:
            return Prefetch(key, None, 0, 0, time.monotonic())
        first = max(1, head.last_seq - wanted + 1)
        return Prefetch(key, head.cid, first, head.last_seq + PREFETCH_SLACK, time.monotonic())

    @staticmethod
    def prefetch_keys(plan: Prefetch) -> list[keys.Key]:
        found = [keys.meta(plan.key)]
        if plan.cid is not None:
            found += [keys.turn(plan.key, plan.cid, s) for s in range(plan.first, plan.last + 1)]
        return found

    def prefetched(self, plan: Prefetch, items: Sequence[Item]) -> None:
        """Keep what a prefetch read, for the ``load_window`` that comes next."""
        pk = keys.conversation_pk(plan.key)
        meta, turns = None, {}
        for item in items:
            if item.get(keys.PK) != pk:
                continue
            if item.get(keys.SK) == keys.META:
                meta = item
            else:
                turn = turn_of(item)
                turns[turn.seq] = turn
        now = time.monotonic()
        for stale in [k for k, p in self._prefetched.items() if now - p.at > PREFETCH_TTL]:
            del self._prefetched[stale]
        self._prefetched[plan.key] = Prefetch(
            plan.key, plan.cid, plan.first, plan.last, plan.at, meta, turns
        )

    def _from_prefetch(self, key: ConversationKey, max_turns: int) -> ConversationWindow | None:
        found = self._prefetched.pop(key, None)
        if found is None or time.monotonic() - found.at > PREFETCH_TTL:
            return None
        head = Head.of(found.meta)
        known = self._heads.get(key)
        if known is not None and known.version > head.version:
            return None  # this process wrote since: what was read is old
        if head.cid is not None and head.last_seq > 0 and max_turns > 0:
            first = max(1, head.last_seq - max_turns + 1)
            if head.cid != found.cid or first < found.first or head.last_seq > found.last:
                return None
            turns = [found.turns.get(seq) for seq in range(first, head.last_seq + 1)]
            if any(turn is None for turn in turns):
                return None  # not committed when read, or deleted since
            window = window_of(found.meta, [t for t in turns if t is not None])
        else:
            window = window_of(found.meta, ())
        self._seen(key, head)
        return window

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        if max_turns > 1:
            self._window_turns = max_turns
        window = self._from_prefetch(key, max_turns)
        if window is not None:
            return window
        # META sorts after every turn: newest first, it comes first, then the newest turns
        limit = max(max_turns, 0) + 1
        items = await self._table.query(
            limit,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=values(pk=keys.conversation_pk(key)),
            ScanIndexForward=False,
            Limit=limit,
        )
        meta = items[0] if items and items[0].get(keys.SK) == keys.META else None
        head = Head.of(meta)
        self._seen(key, head)
        if head.cid is None or head.last_seq == 0 or max_turns <= 0:
            return window_of(meta, ())
        wanted = min(max_turns, head.last_seq)
        prefix = keys.turn_prefix(head.cid)
        newest = [
            turn_of(item)
            for item in items[1:]
            if str(item.get(keys.SK, "")).startswith(prefix)
            and integer(item, "seq") <= head.last_seq
        ][:wanted]
        if len(newest) < wanted:  # left-overs of an interrupted link sorted in between
            return window_of(meta, await self._turns(key, head, head.last_seq - wanted + 1))
        return window_of(meta, newest[::-1])

    async def _turns(self, key: ConversationKey, head: Head, first: int) -> list[Turn]:
        assert head.cid is not None
        items = await self._table.query(
            None,
            KeyConditionExpression="PK = :pk AND SK BETWEEN :lo AND :hi",
            ExpressionAttributeValues=values(
                pk=keys.conversation_pk(key),
                lo=keys.turn_sk(head.cid, first),
                hi=keys.turn_sk(head.cid, head.last_seq),
            ),
        )
        return [turn_of(item) for item in items]

    async def head(self, key: ConversationKey, expected: int) -> Head:
        """The key's head as last seen here if it is at ``expected``, else as stored."""
        known = self._heads.get(key)
        if known is not None and known.version == expected:
            return known
        head = Head.of(await self._table.get(keys.meta(key)))
        self._seen(key, head)
        return head

    # -- writing ------------------------------------------------------------------------

    async def append(
        self, key: ConversationKey, turns: Sequence[NewTurn], expected: int, now: float
    ) -> tuple[int, tuple[Turn, ...]]:
        if len(turns) > MAX_APPEND:
            raise StoreError(f"the DynamoDB store appends at most {MAX_APPEND} turns at once")
        head = await self.head(key, expected)
        for attempt in range(2):
            if head.version != expected:
                raise self._conflict(key, head, expected)
            actions, new_head = self._start_if_needed(key, head, now)
            first = new_head.last_seq + 1
            stored = tuple(
                Turn(seq, t.role, t.text, t.author, t.created_at)
                for seq, t in enumerate(turns, start=first)
            )
            new_head = Head(
                expected + 1, new_head.generations, new_head.cid, first + len(turns) - 1
            )
            assert new_head.cid is not None
            if head.cid is not None and head.last_seq == 0 and stored:
                # the first turn of a conversation a state save started dates it
                actions.append(
                    self._table.update_action(
                        keys.record(key, new_head.cid),
                        UpdateExpression="SET started_at = :now",
                        ExpressionAttributeValues=values(now=now),
                    )
                )
            actions += [
                self._table.put_action(turn_item(key, new_head.cid, turn)) for turn in stored
            ]
            # META keeps a copy of the newest turn: the window of one turn that the engine
            # reloads after a conflict then comes with the conflict itself
            last = stored[-1] if stored else None
            actions.append(self._meta_update(key, head, new_head, last_turn=last))
            try:
                await self._table.transact(actions)
            except Cancelled as cancelled:
                head = self._refused(key, cancelled, len(actions) - 1)
                if attempt == 0 and head.version == expected:
                    continue  # only what we knew of cid or last seq was out of date
                raise self._conflict(key, head, expected) from cancelled
            self._wrote(key, new_head)
            return new_head.version, stored
        raise self._conflict(key, head, expected)

    async def save_state(
        self,
        key: ConversationKey,
        expected: int,
        backend_state: Mapping[str, Any] | None,
        summary: str | None,
    ) -> int:
        state = None if backend_state is None else json.dumps(dict(backend_state))
        head = await self.head(key, expected)
        for attempt in range(2):
            if head.version != expected:
                raise self._conflict(key, head, expected)
            # a conversation started here has no turns yet; its first append dates it
            actions, started = self._start_if_needed(key, head, 0.0)
            new_head = Head(expected + 1, started.generations, started.cid, started.last_seq)
            actions.append(self._meta_update(key, head, new_head, state=state, summary=summary))
            try:
                await self._table.transact(actions)
            except Cancelled as cancelled:
                head = self._refused(key, cancelled, len(actions) - 1)
                if attempt == 0 and head.version == expected:
                    continue
                raise self._conflict(key, head, expected) from cancelled
            self._wrote(key, new_head)
            return new_head.version
        raise self._conflict(key, head, expected)

    async def reset(self, key: ConversationKey) -> None:
        try:
            response = await self._table.update(
                keys.meta(key),
                UpdateExpression="SET version = version + :one, last_seq = :zero"
                " REMOVE cid, #state, summary, last_turn",
                ConditionExpression="attribute_exists(cid)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values(one=1, zero=0),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:  # no current conversation: nothing to archive
            self._seen(key, Head.of(failed.item))
            return
        self._wrote(key, Head.of(from_wire(response["Attributes"])))

    def _start_if_needed(
        self, key: ConversationKey, head: Head, started_at: float
    ) -> tuple[list[Wire], Head]:
        """The actions that start the key's next conversation when it has none, and the
        head as it will be (before the version bump)."""
        if head.cid is not None:
            return [], head
        generation = head.generations + 1
        cid = keys.native_cid(generation)
        record = {
            **keys.record(key, cid),
            "cid": cid,
            "uid": secrets.token_hex(8),
            "created": time.time_ns(),
            "started_at": started_at,
            "persona_id": key.persona_id,
            "scope": key.scope,
        }
        actions = [self._table.put_action(record)]
        if head.version == 0:  # the key's first item: index it under its owner
            actions.append(self._table.put_action(self.slot_item(key)))
        return actions, Head(head.version, generation, cid, 0)

    @staticmethod
    def slot_item(key: ConversationKey) -> dict[str, object]:
        return {
            **keys.slot_index(key.owner, key.persona_id, key.scope),
            "persona_id": key.persona_id,
            "scope": key.scope,
        }

    def _meta_update(
        self,
        key: ConversationKey,
        head: Head,
        new: Head,
        *,
        state: str | None = None,
        summary: str | None = None,
        last_turn: Turn | None = None,
    ) -> Wire:
        condition, condition_values = version_condition(head)
        sets: dict[str, object] = {"version": new.version}
        if new.last_seq != head.last_seq or new.cid != head.cid:
            sets["last_seq"] = new.last_seq
        if new.cid != head.cid:  # a conversation starts
            sets |= {"cid": new.cid, "gens": new.generations}
        if head.version == 0:
            sets |= {"owner": key.owner, "persona_id": key.persona_id, "scope": key.scope}
        if state is not None:
            sets["state"] = state
        if summary is not None:
            sets["summary"] = summary
        if last_turn is not None:
            sets["last_turn"] = turn_fields(last_turn)
        names = {f"#a{n}": name for n, name in enumerate(sets)}
        assignments = ", ".join(f"#a{n} = :a{n}" for n in range(len(sets)))
        return self._table.update_action(
            keys.meta(key),
            UpdateExpression=f"SET {assignments}",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=condition_values
            | values(**{f"a{n}": value for n, value in enumerate(sets.values())}),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _refused(self, key: ConversationKey, cancelled: Cancelled, meta_index: int) -> Head:
        """The head as stored, from a transaction whose META condition failed. Kept
        losing to other transactions on this conversation is a conflict too."""
        if not cancelled.failed(meta_index):
            if not any(r.code == "TransactionConflict" for r in cancelled.reasons):
                raise cancelled
            self._heads.pop(key)
            return Head(version=-1)
        meta = cancelled.item(meta_index)
        head = Head.of(meta)
        self._heads.put(key, head)
        # what the engine reloads next (``load_window(key, 1)``) is in hand: keep it
        newest = last_turn_of(meta)
        turns = {newest.seq: newest} if newest is not None else {}
        self._prefetched[key] = Prefetch(
            key, head.cid, head.last_seq, head.last_seq, time.monotonic(), meta, turns
        )
        return head

    def _conflict(self, key: ConversationKey, head: Head, expected: int) -> VersionConflict:
        self._table.stats.version_conflicts += 1
        return VersionConflict(f"conversation {key} is at version {head.version}, not {expected}")

    def _wrote(self, key: ConversationKey, head: Head) -> None:
        self._prefetched.pop(key, None)
        self._seen(key, head)

    # -- whole partitions: export and forget ---------------------------------------------

    async def partition(self, key: ConversationKey) -> list[Item]:
        """Every item of the key, in sort key order."""
        return await self._table.query(
            None,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=values(pk=keys.conversation_pk(key)),
        )

    async def records(self, key: ConversationKey) -> list[tuple[int, ConversationRecord]]:
        """The key's conversations as ``(created, record)``, each with all its turns."""
        items = await self.partition(key)
        head = Head.of(items[-1] if items and items[-1].get(keys.SK) == keys.META else None)
        turns: dict[str, list[Turn]] = {}
        found: list[tuple[int, ConversationRecord]] = []
        for item in items:
            split = keys.split_turn_sk(str(item.get(keys.SK)))
            if split is not None:
                cid, seq = split
                if cid != head.cid or seq <= head.last_seq:
                    turns.setdefault(cid, []).append(turn_of(item))
        for item in items:
            if not str(item.get(keys.SK)).startswith(keys.RECORD):
                continue
            cid = text(item, "cid")
            record = ConversationRecord(
                key.persona_id,
                key.scope,
                cid != head.cid,
                number(item, "started_at"),
                tuple(turns.get(cid, ())),
            )
            found.append((integer(item, "created"), record))
        return found

    async def delete_partition(self, key: ConversationKey) -> None:
        items = await self._table.query(
            None,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=values(pk=keys.conversation_pk(key)),
            ProjectionExpression="PK, SK",
        )
        doomed = [keys.key(text(i, keys.PK), text(i, keys.SK)) for i in items]
        # META last: were this interrupted, the key would still be found and finished
        doomed.sort(key=lambda k: k[keys.SK] == keys.META)
        await self._table.batch_write(deletes=doomed)
        self._heads.pop(key)
        self._prefetched.pop(key, None)
