"""``personabridge db create`` and ``personabridge db check`` for the DynamoDB table.

:func:`create_table` is idempotent: it creates the table when it is missing (on-demand
capacity, ``PK``/``SK`` string keys), waits until it is ``ACTIVE``, then enables TTL on
``expires_at`` (a separate call: CreateTable cannot do it) unless it is on already.
:func:`check_table` reports what is wrong with an existing table without changing it.
Both run over an open :class:`~bot.store.dynamo.DynamoStore`'s client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from bot.errors import StoreUnavailable
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Wire
from bot.store.dynamo.table import Table, error_code

if TYPE_CHECKING:
    from bot.store.dynamo.store import DynamoStore

KEY_SCHEMA = [
    {"AttributeName": keys.PK, "KeyType": "HASH"},
    {"AttributeName": keys.SK, "KeyType": "RANGE"},
]
ATTRIBUTES = [
    {"AttributeName": keys.PK, "AttributeType": "S"},
    {"AttributeName": keys.SK, "AttributeType": "S"},
]


@dataclass(frozen=True, slots=True)
class TableReport:
    """What ``db create`` did or ``db check`` found: ``ok`` when ``problems`` is empty."""

    table: str
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"DynamoDB table {self.table!r}: {'ok' if self.ok else 'NOT ready'}"]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


async def _describe(table: Table) -> Wire | None:
    try:
        response = await table.call("DescribeTable", TableName=table.name)
    except StoreUnavailable as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return cast(Wire, response["Table"])


async def _ttl(table: Table) -> tuple[str, str | None]:
    response = await table.call("DescribeTimeToLive", TableName=table.name)
    description = cast(Wire, response.get("TimeToLiveDescription", {}))
    return str(description.get("TimeToLiveStatus", "DISABLED")), description.get("AttributeName")


async def create_table(
    store: DynamoStore, *, wait_seconds: float = 300.0, poll_interval: float = 1.0
) -> TableReport:
    """Create the store's table if needed, wait until it is active, enable TTL; then
    check it. Safe to run again, and while the bot runs."""
    table = store.table
    notes: list[str] = []
    if await _describe(table) is None:
        try:
            await table.call(
                "CreateTable",
                TableName=table.name,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=KEY_SCHEMA,
                AttributeDefinitions=ATTRIBUTES,
            )
            notes.append("created (on-demand capacity)")
        except StoreUnavailable as exc:
            if error_code(exc) != "ResourceInUseException":  # created meanwhile
                raise
    deadline = time.monotonic() + wait_seconds
    while (described := await _describe(table)) is None or described["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"the table {table.name!r} is not ACTIVE after {wait_seconds:.0f} s"
            )
        await asyncio.sleep(poll_interval)
    status, _ = await _ttl(table)
    if status in ("DISABLED", "DISABLING"):
        await table.call(
            "UpdateTimeToLive",
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": keys.TTL},
        )
        notes.append(f"TTL enabled on {keys.TTL!r}")
    report = await check_table(store)
    return TableReport(table.name, (*notes, *report.notes), report.problems)


async def check_table(store: DynamoStore) -> TableReport:
    """Whether the store's table exists, is active, has the ``PK``/``SK`` string keys
    and TTL on ``expires_at``. Changes nothing."""
    table = store.table
    described = await _describe(table)
    if described is None:
        return TableReport(
            table.name, problems=("it does not exist: run `personabridge db create`",)
        )
    notes: list[str] = [f"status {described['TableStatus']}"]
    problems: list[str] = []
    if described["TableStatus"] != "ACTIVE":
        problems.append(f"it is {described['TableStatus']}, not ACTIVE")
    types = {d["AttributeName"]: d["AttributeType"] for d in described["AttributeDefinitions"]}
    schema = [
        {"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]}
        for k in described["KeySchema"]
    ]
    if schema != KEY_SCHEMA or any(types.get(a["AttributeName"]) != "S" for a in ATTRIBUTES):
        problems.append(
            f"its key schema is {schema} ({types}); PersonaBridge needs PK (string) as the "
            "partition key and SK (string) as the sort key"
        )
    billing = described.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    notes.append(f"billing {billing}")
    status, attribute = await _ttl(table)
    if status not in ("ENABLED", "ENABLING") or attribute != keys.TTL:
        problems.append(
            f"TTL is {status.lower()}{f' on {attribute!r}' if attribute else ''}; it must be "
            f"enabled on {keys.TTL!r} (run `personabridge db create`)"
        )
    else:
        notes.append(f"TTL {status.lower()} on {keys.TTL!r}")
    return TableReport(table.name, tuple(notes), tuple(problems))
