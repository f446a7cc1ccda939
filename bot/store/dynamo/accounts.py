"""Accounts, link codes and web sessions on DynamoDB.

An account is two items written in one transaction: its record in its owner's partition
(``OWNER#account:<id>`` / ``ACCOUNT``) and the reservation of its name
(``ACCOUNT#<casefolded name>``), both put only where nothing is (the name is unique in
any letter case). Link codes and sessions carry ``expires_at``, the table's TTL
attribute, which every read checks; each has an index item in the account's partition
(with the same expiry) so that deleting the account finds them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from bot.errors import StoreError, UsernameTaken
from bot.messages import OwnerId, account_owner
from bot.store.base import Account, WebSession
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Item, from_wire, number, text, values
from bot.store.dynamo.table import Cancelled, ConditionFailed, Table

#: The condition that an account exists and is not being deleted.
ACCOUNT_LIVE: Final = "attribute_exists(PK) AND attribute_not_exists(deleting)"

#: Deletes an owner's conversations, preferences and usage, given its partition's items.
ForgetOwner = Callable[[OwnerId, Sequence[Item]], Awaitable[None]]


def account_of(item: Item | None) -> Account | None:
    if item is None or "deleting" in item:
        return None
    return Account(
        text(item, "account_id"),
        text(item, "username"),
        text(item, "password_hash"),
        number(item, "created_at"),
    )


async def owner_items(table: Table, owner: OwnerId) -> list[Item]:
    """Every item of the owner's partition."""
    return await table.query(
        None,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues=values(pk=keys.owner_pk(owner)),
    )


async def create_account(table: Table, username: str, password_hash: str, now: float) -> Account:
    account = Account(secrets.token_hex(8), username, password_hash, now)
    name = {**keys.account_name(username), "account_id": account.id}
    record = {
        **keys.account_record(account.id),
        "account_id": account.id,
        "username": username,
        "password_hash": password_hash,
        "created_at": now,
    }
    absent = "attribute_not_exists(PK)"
    try:
        await table.transact(
            [
                table.put_action(name, ConditionExpression=absent),
                table.put_action(record, ConditionExpression=absent),
            ]
        )
    except Cancelled as cancelled:
        if cancelled.failed(0):
            raise UsernameTaken(f"the username {username!r} is taken") from cancelled
        raise
    return account


async def find_account(table: Table, username: str) -> Account | None:
    name = await table.get(keys.account_name(username))
    if name is None:
        return None
    account = account_of(await table.get(keys.account_record(text(name, "account_id"))))
    if account is None or account.username.casefold() != username.casefold():
        return None
    return account


async def set_password_hash(table: Table, account_id: str, password_hash: str) -> None:
    with contextlib.suppress(ConditionFailed):  # no such account: nothing to do
        await table.update(
            keys.account_record(account_id),
            UpdateExpression="SET password_hash = :h",
            ConditionExpression=ACCOUNT_LIVE,
            ExpressionAttributeValues=values(h=password_hash),
        )


async def delete_account(table: Table, account_id: str, forget: ForgetOwner) -> bool:
    """Delete the account and everything of it; False when there is no such account.

    Marked ``deleting`` first, so that no link, code or session is added meanwhile (their
    transactions check that the account is live); the record goes last, so that an
    interrupted deletion is found, and finished, by the next one."""
    record = await table.get(keys.account_record(account_id))
    if record is None:
        return False
    await table.update(
        keys.account_record(account_id),
        UpdateExpression="SET deleting = :t",
        ExpressionAttributeValues=values(t=True),
    )
    owner = account_owner(account_id)
    index = await owner_items(table, owner)
    mains: list[keys.Key] = []
    for item in index:
        sk = text(item, keys.SK)
        if sk.startswith(f"{keys.IDENTITY}#"):
            # the identity item, unless it was linked to another account meanwhile
            with contextlib.suppress(ConditionFailed):
                await table.delete(
                    keys.key(sk, keys.IDENTITY),
                    ConditionExpression="account_id = :a",
                    ExpressionAttributeValues=values(a=account_id),
                )
        elif sk.startswith((f"{keys.LINKCODE}#", f"{keys.WEBSESSION}#")):
            mains.append(keys.key(sk, sk.partition("#")[0]))
    await table.batch_write(deletes=mains)
    await forget(owner, index)
    pk = keys.owner_pk(owner)
    rest = [keys.key(pk, text(i, keys.SK)) for i in index if i[keys.SK] != keys.ACCOUNT]
    await table.batch_write(deletes=rest)
    await table.transact(
        [
            table.delete_action(
                keys.account_name(text(record, "username")),
                ConditionExpression="account_id = :a",
                ExpressionAttributeValues=values(a=account_id),
            ),
            table.delete_action(keys.account_record(account_id)),
        ]
    )
    return True


# -- link codes and web sessions --------------------------------------------------------


async def put_expiring(
    table: Table, main: keys.Key, account_id: str, expires_at: float, kind: str
) -> None:
    """Put a link code or web session of a live account, with its index item."""
    try:
        await table.transact(
            [
                table.check_action(keys.account_record(account_id), ACCOUNT_LIVE),
                table.put_action({**main, "account_id": account_id, keys.TTL: expires_at}),
                table.put_action({**keys.account_index(account_id, main), keys.TTL: expires_at}),
            ]
        )
    except Cancelled as cancelled:
        if cancelled.failed(0):
            raise StoreError(f"no account with id {account_id!r} for a {kind}") from None
        raise


async def take_link_code(table: Table, code_hash: str, now: float) -> str | None:
    # One conditional delete: of concurrent takes, exactly one gets the old item. An
    # expired code is refused and left for DynamoDB's TTL to remove.
    try:
        response = await table.delete(
            keys.link_code(code_hash),
            ConditionExpression=f"{keys.TTL} > :now",
            ExpressionAttributeValues=values(now=now),
            ReturnValues="ALL_OLD",
        )
    except ConditionFailed:
        return None
    old = response.get("Attributes")
    return text(from_wire(old), "account_id") if old else None


async def get_web_session(table: Table, token_hash: str, now: float) -> WebSession | None:
    item = await table.get(keys.web_session(token_hash))
    if item is None or number(item, keys.TTL) <= now:
        return None  # TTL deletes expired items only eventually
    return WebSession(text(item, "account_id"), number(item, keys.TTL))


async def delete_web_session(table: Table, token_hash: str) -> None:
    main = keys.web_session(token_hash)
    response = await table.delete(main, ReturnValues="ALL_OLD")
    old = response.get("Attributes")
    if old:
        await table.delete(keys.account_index(text(from_wire(old), "account_id"), main))
