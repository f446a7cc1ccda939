"""Two-step linking on DynamoDB: capped link codes, pending links and account notices.

Link codes per account are capped with *slots*: items ``LINKSLOT#<n>`` (``n`` below
``max_live``) in the account's partition, each naming the code that holds it. A new code
takes a free slot, or the one whose code expires first, in one transaction that puts
the code (and its index item), claims the slot under the condition that it still holds
what was read, and deletes the code it pushes out. Two processes racing for one slot:
one transaction fails its condition and reads again, so an account never holds more
than ``max_live`` codes. A slot whose code was used keeps naming it until replaced
(deleting a gone code is harmless), so the cap may push out a live code a little early.

A pending link is one item per identity (``PENDINGLINK#<platform>#<user id>``) with the
table's TTL attribute; taking it is a conditional DeleteItem (``expires_at > :now``,
``ALL_OLD``), so one confirmation wins across processes. It is not indexed under the
account: deleting an account leaves it to expire within minutes, and confirming it
finds the account's codes gone.

Notices live in the account's partition (``NOTICE#<microseconds>#<random>``, with the
TTL attribute), so deleting the account deletes them; a page reads them with one
descending Query.
"""

from __future__ import annotations

import secrets
from typing import Final

from bot.errors import StoreError, StoreUnavailable
from bot.messages import Identity, account_owner
from bot.store.base import Notice, PendingLink
from bot.store.dynamo import keys
from bot.store.dynamo.accounts import ACCOUNT_LIVE
from bot.store.dynamo.codec import Item, from_wire, number, optional_text, text, values
from bot.store.dynamo.table import Cancelled, ConditionFailed, Table

LINKSLOT: Final = "LINKSLOT#"
NOTICE: Final = "NOTICE#"
PENDINGLINK: Final = "PENDINGLINK"
#: Tries of a capped put when other processes keep taking the slot it chose.
SLOT_ATTEMPTS = 8


def link_slot(account_id: str, n: int) -> keys.Key:
    return keys.key(keys.owner_pk(account_owner(account_id)), f"{LINKSLOT}{n:04d}")


def pending_link(identity: Identity) -> keys.Key:
    return keys.key(
        f"{PENDINGLINK}#{keys.part(identity.platform)}#{keys.part(identity.user_id)}", PENDINGLINK
    )


async def put_capped_link_code(
    table: Table, code_hash: str, account_id: str, expires_at: float, max_live: int
) -> None:
    """Put a code of a live account, pushing out the one expiring first when the
    account holds ``max_live`` already (see the module doc)."""
    pk = keys.owner_pk(account_owner(account_id))
    main = keys.link_code(code_hash)
    for _ in range(SLOT_ATTEMPTS):
        slots = await table.query(
            None,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues=values(pk=pk, prefix=LINKSLOT),
        )
        n, old = _choose_slot(slots, account_id, max(1, max_live))
        slot = {**link_slot(account_id, n), "code_hash": code_hash, keys.TTL: expires_at}
        actions = [
            table.check_action(keys.account_record(account_id), ACCOUNT_LIVE),
            table.put_action({**main, "account_id": account_id, keys.TTL: expires_at}),
            table.put_action({**keys.account_index(account_id, main), keys.TTL: expires_at}),
        ]
        old_hash = optional_text(old, "code_hash") if old is not None else None
        if old is None:
            actions.append(table.put_action(slot, ConditionExpression="attribute_not_exists(PK)"))
        else:
            actions.append(
                table.put_action(
                    slot,
                    ConditionExpression="code_hash = :old",
                    ExpressionAttributeValues=values(old=old_hash),
                )
            )
        if old_hash is not None and old_hash != code_hash:
            pushed = keys.link_code(old_hash)
            actions.append(table.delete_action(pushed))
            actions.append(table.delete_action(keys.account_index(account_id, pushed)))
        try:
            await table.transact(actions)
            return
        except Cancelled as cancelled:
            if cancelled.failed(0):
                raise StoreError(f"no account with id {account_id!r} for a link code") from None
            if not cancelled.failed(3):
                raise
    raise StoreUnavailable("the account's link code slots kept changing")


def _choose_slot(slots: list[Item], account_id: str, max_live: int) -> tuple[int, Item | None]:
    """A free slot below ``max_live`` (and None), else the slot whose code expires first."""
    taken = {text(item, keys.SK): item for item in slots}
    for n in range(max_live):
        if link_slot(account_id, n)[keys.SK] not in taken:
            return n, None
    candidates = [
        (number(taken[link_slot(account_id, n)[keys.SK]], keys.TTL), n) for n in range(max_live)
    ]
    _, n = min(candidates)
    return n, taken[link_slot(account_id, n)[keys.SK]]


async def peek_link_code(table: Table, code_hash: str, now: float) -> str | None:
    item = await table.get(keys.link_code(code_hash))
    if item is None or number(item, keys.TTL) <= now:
        return None
    return text(item, "account_id")


async def put_pending_link(table: Table, pending: PendingLink) -> None:
    item = {
        **pending_link(pending.identity),
        "platform": pending.identity.platform,
        "user_id": pending.identity.user_id,
        "account_id": pending.account_id,
        "code_hash": pending.code_hash,
        keys.TTL: pending.expires_at,
    }
    try:
        await table.transact(
            [
                table.check_action(keys.account_record(pending.account_id), ACCOUNT_LIVE),
                table.put_action(item),
            ]
        )
    except Cancelled as cancelled:
        if cancelled.failed(0):
            raise StoreError(f"no account with id {pending.account_id!r}") from None
        raise


async def take_pending_link(table: Table, identity: Identity, now: float) -> PendingLink | None:
    try:
        response = await table.delete(
            pending_link(identity),
            ConditionExpression=f"{keys.TTL} > :now",
            ExpressionAttributeValues=values(now=now),
            ReturnValues="ALL_OLD",
        )
    except ConditionFailed:
        return None  # none, or expired (TTL removes it eventually)
    old = response.get("Attributes")
    if not old:
        return None
    item = from_wire(old)
    return PendingLink(
        identity, text(item, "account_id"), text(item, "code_hash"), number(item, keys.TTL)
    )


async def add_notice(
    table: Table, account_id: str, text_: str, now: float, expires_at: float
) -> None:
    sk = f"{NOTICE}{round(now * 1_000_000):020d}#{secrets.token_hex(4)}"
    item = {
        **keys.key(keys.owner_pk(account_owner(account_id)), sk),
        "created_at": now,
        "text": text_,
        keys.TTL: expires_at,
    }
    try:
        await table.transact(
            [
                table.check_action(keys.account_record(account_id), ACCOUNT_LIVE),
                table.put_action(item),
            ]
        )
    except Cancelled as cancelled:
        if cancelled.failed(0):
            raise StoreError(f"no account with id {account_id!r} for a notice") from None
        raise


async def list_notices(table: Table, account_id: str, now: float, limit: int) -> list[Notice]:
    if limit <= 0:
        return []
    items = await table.query(
        limit,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=values(
            pk=keys.owner_pk(account_owner(account_id)), prefix=NOTICE
        ),
        ScanIndexForward=False,
        Limit=limit,
    )
    return [
        Notice(number(item, "created_at"), text(item, "text"))
        for item in items
        if number(item, keys.TTL) > now
    ]
