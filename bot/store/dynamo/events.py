"""Recorded platform events and the inbox on DynamoDB (see the ``Store`` protocol).

An event's record is one item, ``EVENT#<source>#<id>`` / ``EVENT``, written with the
condition that no unexpired record is there: of several workers given one Telegram
update or Discord interaction, exactly one succeeds. ``expires_at`` is the table's TTL
attribute, so DynamoDB deletes old records itself. An inbox entry (an event acknowledged
and not answered yet) is an item in its source's partition, ``INBOX#<source>`` / ``<id>``,
put in the same transaction as the record; answering deletes it. Only unanswered events
are there, so the Query that looks for entries whose hold lapsed reads little.
"""

from __future__ import annotations

from bot.store.base import InboxEntry
from bot.store.dynamo import keys
from bot.store.dynamo.codec import number, text, values
from bot.store.dynamo.table import Cancelled, ConditionFailed, Table

_FRESH = f"attribute_not_exists(PK) OR {keys.TTL} <= :now"


def _record(source: str, event_id: str) -> keys.Key:
    return keys.key(f"EVENT#{keys.part(source)}#{keys.part(event_id)}", "EVENT")


def _entry(source: str, event_id: str) -> keys.Key:
    return keys.key(f"INBOX#{keys.part(source)}", event_id)


async def claim_event(
    table: Table,
    source: str,
    event_id: str,
    now: float,
    expires_at: float,
    payload: str | None,
    hold_until: float,
) -> bool:
    record = {**_record(source, event_id), keys.TTL: expires_at}
    condition = {"ConditionExpression": _FRESH, "ExpressionAttributeValues": values(now=now)}
    if payload is None:
        try:
            await table.put(record, **condition)
        except ConditionFailed:
            return False
        return True
    entry = {
        **_entry(source, event_id),
        "payload": payload,
        "received_at": now,
        "hold_until": hold_until,
        keys.TTL: expires_at,
    }
    try:
        await table.transact([table.put_action(record, **condition), table.put_action(entry)])
    except Cancelled as cancelled:
        if cancelled.failed(0):
            return False
        raise
    return True


async def take_inbox(
    table: Table, source: str, now: float, hold_until: float, limit: int
) -> list[InboxEntry]:
    items = await table.query(
        None,
        KeyConditionExpression="PK = :pk",
        FilterExpression=f"hold_until <= :now AND {keys.TTL} > :now",
        ExpressionAttributeValues=values(pk=_entry(source, "")[keys.PK], now=now),
    )
    taken: list[InboxEntry] = []
    for item in sorted(items, key=lambda i: number(i, "received_at"))[: max(limit, 0)]:
        event_id = text(item, keys.SK)
        try:  # another worker may take it between the Query and here
            await table.update(
                _entry(source, event_id),
                UpdateExpression="SET hold_until = :h",
                ConditionExpression="hold_until <= :now",
                ExpressionAttributeValues=values(h=hold_until, now=now),
            )
        except ConditionFailed:
            continue
        taken.append(
            InboxEntry(source, event_id, text(item, "payload"), number(item, "received_at"))
        )
    return taken


async def finish_inbox(table: Table, source: str, event_id: str) -> None:
    await table.delete(_entry(source, event_id))
