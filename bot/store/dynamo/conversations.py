"""Conversations on DynamoDB: windows, appends under a version check, state, reset, export.

One partition per conversation key holds its ``~META`` item, one ``RECORD#<cid>`` item
per conversation the key has had (current and archived) and their ``TURN#<cid>#<seq>``
items (see :mod:`bot.store.dynamo`). Every write is a transaction that includes an
update of META under the condition that it is still what the writer last saw (version,
current cid, last seq), so several processes never interleave or lose turns. What this
process remembers (:mod:`~bot.store.dynamo.recent`) saves reads, never checks.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from bot.errors import ConversationBusy, OwnerForgotten, StoreError, VersionConflict
from bot.messages import ConversationKey, NewTurn, Turn
from bot.store.base import ConversationRecord, ConversationWindow, Lease, lease_blocks
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Item, Wire, from_wire, integer, number, text, values
from bot.store.dynamo.items import (
    Head,
    turn_fields,
    turn_item,
    turn_of,
    version_condition,
    window_of,
)
from bot.store.dynamo.recent import Recent
from bot.store.dynamo.table import Cancelled, ConditionFailed, Table

#: Most turns one append may carry: they and META go in one transaction (<= 100 items).
MAX_APPEND: Final = 90
#: META attributes that belong to the current conversation, and go with it.
_RESET = (
    "SET version = version + :one, last_seq = :zero"
    " REMOVE cid, #state, summary, last_turn, lease_holder, lease_until"
)


class Conversations:
    """The conversation half of :class:`~bot.store.dynamo.DynamoStore`."""

    def __init__(self, table: Table, recent: Recent) -> None:
        self._table = table
        self.recent = recent

    # -- reading ------------------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        window = self.recent.take(key, max_turns)
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
        self.recent.seen(key, head)
        if head.cid is None:
            return window_of(meta, ())
        prefix, found = keys.turn_prefix(head.cid), {}
        for item in items[1:]:
            if str(item.get(keys.SK, "")).startswith(prefix):
                turn = turn_of(item)
                found[turn.seq] = turn
        window = self.recent.window(meta, max_turns, found)
        if window is None:  # left-overs of an interrupted link sorted in between
            first = max(1, head.last_seq - max_turns + 1)
            window = window_of(meta, await self._turns(key, head, first))
        self.recent.remember(key, head.cid, window.turns)
        return window

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

    async def _head(self, key: ConversationKey, expected: int) -> Head:
        """The key's head as last seen here if it is at ``expected``, else as stored."""
        known = self.recent.head(key)
        if known is not None and known.version == expected:
            return known
        head = Head.of(await self._table.get(keys.meta(key)))
        self.recent.seen(key, head)
        return head

    # -- writing ------------------------------------------------------------------------

    async def append(
        self,
        key: ConversationKey,
        turns: Sequence[NewTurn],
        expected: int,
        now: float,
        take: Lease | None = None,
        release: str | None = None,
        epoch: int | None = None,
    ) -> tuple[int, tuple[Turn, ...]]:
        """Append under META's condition; the lease is taken or freed in the same
        transaction (see :meth:`_lease_after`), so it costs no call of its own."""
        if len(turns) > MAX_APPEND:
            raise StoreError(f"the DynamoDB store appends at most {MAX_APPEND} turns at once")
        head = await self._head(key, expected)
        for attempt in range(2):
            if head.version != expected:
                await self._check_epoch(key, epoch)
                raise self._conflict(key, head, expected)
            if lease_blocks(head.lease_holder, head.lease_until, take, now):
                self._table.stats.lease_busy += 1
                busy_until = head.lease_until or now
                raise ConversationBusy(f"conversation {key} is being answered", until=busy_until)
            actions, started = self._start_if_needed(key, head, now)
            actions.insert(0, self._epoch_check(key, epoch))
            assert started.cid is not None
            first = started.last_seq + 1
            stored = tuple(
                Turn(
                    seq,
                    t.role,
                    t.text,
                    t.author,
                    t.created_at,
                    t.reply_to,
                    tuple(item.stored() for item in t.attachments),
                )
                for seq, t in enumerate(turns, start=first)
            )
            holder, until = self._lease_after(head, take, release)
            new = Head(
                expected + 1,
                started.generations,
                started.cid,
                first + len(turns) - 1,
                holder,
                until,
            )
            if head.cid is not None and head.last_seq == 0 and stored:
                # the first turn of a conversation a state save started dates it
                actions.append(
                    self._table.update_action(
                        keys.record(key, started.cid),
                        UpdateExpression="SET started_at = :now",
                        ExpressionAttributeValues=values(now=now),
                    )
                )
            # the write's own mark on its turns: a resend can tell it was applied
            written_by = secrets.token_hex(8)
            actions += [
                self._table.put_action(turn_item(key, started.cid, t) | {"wid": written_by})
                for t in stored
            ]
            # META keeps a copy of the newest turn: the window of one turn the engine
            # reloads after a conflict then comes with the conflict itself
            newest = stored[-1] if stored else None
            actions.append(self._meta_update(key, head, new, last_turn=newest, now=now))
            try:
                await self._table.transact(actions)
            except Cancelled as cancelled:
                _check_forgotten(key, cancelled)
                if (
                    cancelled.resent
                    and stored
                    and await self._landed(key, started.cid, stored[0], written_by)
                ):
                    self.recent.wrote(key, new, stored)
                    return new.version, stored
                head = self._refused(key, cancelled, len(actions) - 1)
                if attempt == 0 and head.version == expected:
                    continue  # only what we knew of cid or last seq was out of date
                raise self._conflict(key, head, expected) from cancelled
            self.recent.wrote(key, new, stored)
            return new.version, stored
        raise self._conflict(key, head, expected)

    async def save_state(
        self,
        key: ConversationKey,
        expected: int,
        backend_state: Mapping[str, Any] | None,
        summary: str | None,
        epoch: int | None = None,
    ) -> int:
        state = None if backend_state is None else json.dumps(dict(backend_state))
        head = await self._head(key, expected)
        for attempt in range(2):
            if head.version != expected:
                await self._check_epoch(key, epoch)
                raise self._conflict(key, head, expected)
            # a conversation started here has no turns yet; its first append dates it
            actions, started = self._start_if_needed(key, head, 0.0)
            actions.insert(0, self._epoch_check(key, epoch))
            # the lease stays as it is: a summary may be saved while another worker answers
            new = dataclasses.replace(started, version=expected + 1)
            actions.append(self._meta_update(key, head, new, state=state, summary=summary))
            try:
                await self._table.transact(actions)
            except Cancelled as cancelled:
                _check_forgotten(key, cancelled)
                head = self._refused(key, cancelled, len(actions) - 1)
                if attempt == 0 and head.version == expected:
                    continue
                raise self._conflict(key, head, expected) from cancelled
            self.recent.wrote(key, new)
            return new.version
        raise self._conflict(key, head, expected)

    async def _landed(self, key: ConversationKey, cid: str, first: Turn, written_by: str) -> bool:
        """Whether a transaction botocore resent had been applied on an earlier try (its
        answer lost): then its first turn is stored with its mark. Without this, the
        resend fails on our own write, the engine takes it for a conflict and appends
        the same turn again."""
        found = await self._table.get(keys.turn(key, cid, first.seq))
        return found is not None and found.get("wid") == written_by

    @staticmethod
    def _lease_after(
        head: Head, take: Lease | None, release: str | None
    ) -> tuple[str | None, float | None]:
        """The lease as an append leaves it: taken, freed (when ``release`` holds it) or
        as it was."""
        if take is not None:
            return take.holder, take.until
        if release is not None and head.lease_holder == release:
            return None, None
        return head.lease_holder, head.lease_until

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        """Free the lease if ``holder`` has it; the version stays (see
        :class:`~bot.store.dynamo.items.Head`: a lease only ever goes from held to free
        without a version bump, so a head remembered at a version never shows a lease
        free that is held)."""
        try:
            await self._table.update(
                keys.meta(key),
                UpdateExpression="REMOVE lease_holder, lease_until",
                ConditionExpression="lease_holder = :h",
                ExpressionAttributeValues=values(h=holder),
            )
        except ConditionFailed:
            return
        known = self.recent.head(key)
        if known is not None and known.lease_holder == holder:
            self.recent.seen(key, dataclasses.replace(known, lease_holder=None, lease_until=None))

    async def reset(self, key: ConversationKey) -> None:
        try:
            response = await self._table.update(
                keys.meta(key),
                UpdateExpression=_RESET,
                ConditionExpression="attribute_exists(cid)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values(one=1, zero=0),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:  # no current conversation: nothing to archive
            self.recent.seen(key, Head.of(failed.item))
            return
        self.recent.wrote(key, Head.of(from_wire(response["Attributes"])))

    async def _check_epoch(self, key: ConversationKey, epoch: int | None) -> None:
        """Before a conflict is reported: OwnerForgotten instead when the owner has been
        forgotten or deleted (the writer must not try again at a newer version)."""
        item = await self._table.get(keys.epoch(key.owner))
        if item is None:
            return
        if item.get("deleted") or (epoch is not None and integer(item, "epoch", 0) != epoch):
            raise OwnerForgotten(f"owner {key.owner} was forgotten or deleted")

    def _epoch_check(self, key: ConversationKey, epoch: int | None) -> Wire:
        """A ConditionCheck (always the transaction's first action) on the owner's epoch
        item: the owner is not deleted and, when given, still at ``epoch``."""
        condition = "attribute_not_exists(deleted)"
        if epoch is None:
            return self._table.check_action(keys.epoch(key.owner), condition)
        if epoch == 0:
            condition += " AND (attribute_not_exists(epoch) OR epoch = :epoch)"
        else:
            condition += " AND epoch = :epoch"
        return self._table.check_action(
            keys.epoch(key.owner), condition, ExpressionAttributeValues=values(epoch=epoch)
        )

    def _start_if_needed(
        self, key: ConversationKey, head: Head, started_at: float
    ) -> tuple[list[Wire], Head]:
        """The actions that start the key's next conversation when it has none, and the
        head as it will be (before the version bump)."""
        if head.cid is not None:
            return [], head
        generation, uid = head.generations + 1, secrets.token_hex(8)
        cid = keys.native_cid(generation, uid)
        record = {
            **keys.record(key, cid),
            "cid": cid,
            "uid": uid,
            "created": time.time_ns(),
            "started_at": started_at,
            "persona_id": key.persona_id,
            "scope": key.scope,
        }
        actions = [self._table.put_action(record)]
        if head.version == 0:  # the key's first item: index it under its owner
            actions.append(self._table.put_action(slot_item(key)))
        return actions, Head(head.version, generation, cid, 0)

    def _meta_update(
        self,
        key: ConversationKey,
        head: Head,
        new: Head,
        *,
        state: str | None = None,
        summary: str | None = None,
        last_turn: Turn | None = None,
        now: float = 0.0,
    ) -> Wire:
        condition, condition_values = version_condition(head)
        removes: list[str] = []
        if new.lease_holder is not None and new.lease_holder != head.lease_holder:
            # a take: also checked here, not only against the head remembered
            condition += (
                " AND (attribute_not_exists(lease_holder) OR lease_holder = :lh"
                " OR lease_until <= :lnow)"
            )
            condition_values = condition_values | values(lh=new.lease_holder, lnow=now)
        sets: dict[str, object] = {"version": new.version}
        if new.lease_holder is not None and (
            new.lease_holder != head.lease_holder or new.lease_until != head.lease_until
        ):
            sets |= {"lease_holder": new.lease_holder, "lease_until": new.lease_until}
        elif new.lease_holder is None and head.lease_holder is not None:
            removes = ["lease_holder", "lease_until"]
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
        removal = f" REMOVE {', '.join(removes)}" if removes else ""
        return self._table.update_action(
            keys.meta(key),
            UpdateExpression=f"SET {assignments}{removal}",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=condition_values
            | values(**{f"a{n}": value for n, value in enumerate(sets.values())}),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _refused(self, key: ConversationKey, cancelled: Cancelled, meta_index: int) -> Head:
        """The head as stored, from a transaction whose META condition failed. Losing to
        other transactions on this conversation again and again is a conflict too."""
        if cancelled.failed(meta_index):
            return self.recent.refused(key, cancelled.item(meta_index))
        if any(reason.code == "TransactionConflict" for reason in cancelled.reasons):
            return Head(version=-1)
        raise cancelled

    def _conflict(self, key: ConversationKey, head: Head, expected: int) -> VersionConflict:
        self._table.stats.version_conflicts += 1
        now = "being written by another process" if head.version < 0 else f"at {head.version}"
        return VersionConflict(f"conversation {key} is {now}, not at version {expected}")

    # -- whole partitions: export and forget ---------------------------------------------

    async def partition(self, key: ConversationKey) -> list[Item]:
        """Every item of the key, in sort key order."""
        return await self._table.query(
            None,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues=values(pk=keys.conversation_pk(key)),
        )

    async def records(self, key: ConversationKey) -> list[tuple[int, ConversationRecord]]:
        """The key's conversations as ``(created, record)``, each with all its turns.
        Turns without a record (copies left by an interrupted link) are not shown."""
        items = await self.partition(key)
        head = Head.of(items[-1] if items and items[-1].get(keys.SK) == keys.META else None)
        turns: dict[str, list[Turn]] = {}
        for item in items:
            split = keys.split_turn_sk(str(item.get(keys.SK)))
            if split is not None and (split[0] != head.cid or split[1] <= head.last_seq):
                turns.setdefault(split[0], []).append(turn_of(item))
        found: list[tuple[int, ConversationRecord]] = []
        for item in items:
            if str(item.get(keys.SK)).startswith(keys.RECORD):
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
        await self._table.batch_write(deletes=doomed)
        self.recent.forget(key.owner)


def _check_forgotten(key: ConversationKey, cancelled: Cancelled) -> None:
    """OwnerForgotten when the epoch check (the first action) is what failed."""
    if cancelled.failed(0):
        raise OwnerForgotten(f"owner {key.owner} was forgotten or deleted") from cancelled


def slot_item(key: ConversationKey) -> dict[str, object]:
    """The index item, in the owner's partition, of a conversation key."""
    return {
        **keys.slot_index(key.owner, key.persona_id, key.scope),
        "persona_id": key.persona_id,
        "scope": key.scope,
    }
