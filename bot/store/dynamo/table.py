"""One DynamoDB table over one aiobotocore client: typed calls, batching, error mapping.

This is the only module that talks to aiobotocore. botocore's errors are translated
here, at the edge (``raise StoreUnavailable(...) from exc``): throttling that outlived
botocore's own retries (``standard`` or ``adaptive`` mode) and any failure to reach the
service become :class:`~bot.errors.StoreUnavailable`; a request DynamoDB refuses as
invalid becomes :class:`~bot.errors.StoreError`. Failed conditions become the private
:class:`ConditionFailed` and :class:`Cancelled`, which the store turns into what they
mean (a version conflict, a taken name, a no-op).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore import xform_name  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoRegionError,
)

from bot.backoff import Backoff
from bot.errors import ConfigError, StoreError, StoreUnavailable
from bot.store.dynamo.codec import Item, Wire, from_wire, to_wire
from bot.store.dynamo.keys import Key

#: No region in the settings and none in AWS's usual places.
NO_REGION = (
    "PERSONABRIDGE_STORE__DYNAMODB_REGION: no AWS region is set for the DynamoDB table: "
    "set PERSONABRIDGE_STORE__DYNAMODB_REGION (for example eu-west-1), or AWS_REGION, "
    "or a region in ~/.aws/config"
)

#: Error codes (of a call or of one item of a cancelled transaction) that mean "slow down".
THROTTLED: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceeded",
        "ThrottlingException",
        "ThrottlingError",
        "RequestLimitExceeded",
    }
)
BATCH_WRITE_MAX: Final = 25
BATCH_GET_MAX: Final = 100
TRANSACT_MAX: Final = 100
#: Attempts of one transaction cancelled by throttling or a conflicting transaction
#: (botocore does not retry a cancelled transaction), and of unprocessed batch items.
RETRY_ATTEMPTS: Final = 6
RETRY_BASE_DELAY: Final = 0.02
#: The pause before such a retry: doubling from the base, each between half and one
#: and a half times its nominal length.
RETRY_PAUSE: Final = Backoff(RETRY_BASE_DELAY, jitter=(0.5, 1.5))


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code behind a translated error, if it came from one."""
    cause = exc.__cause__
    if isinstance(cause, ClientError):
        return str(cast(Wire, cause.response).get("Error", {}).get("Code", "")) or None
    return None


class ConditionFailed(StoreError):
    """A single-item write's condition failed; ``item`` is the item as it was (if any)."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("the conditional request failed")
        self.item = item


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one item of a cancelled transaction failed (``code`` "None": it did not)."""

    code: str
    item: Item | None


class Cancelled(StoreError):
    """A transaction was cancelled; ``reasons`` has one entry per action, in order.
    ``resent``: botocore had sent the request more than once, so an earlier try may
    have been applied and only its answer lost (then the conditions fail on our own
    write)."""

    def __init__(self, reasons: Sequence[Reason], *, resent: bool = False) -> None:
        super().__init__(f"transaction cancelled: {[r.code for r in reasons]}")
        self.reasons = tuple(reasons)
        self.resent = resent

    def failed(self, index: int) -> bool:
        """Whether the condition of action ``index`` failed."""
        return index < len(self.reasons) and self.reasons[index].code == "ConditionalCheckFailed"

    def item(self, index: int) -> Item | None:
        return self.reasons[index].item if index < len(self.reasons) else None


@dataclass(slots=True)
class DynamoStats:
    """What one store sent to DynamoDB, for tests, benchmarks and metrics."""

    #: API calls by operation name (botocore's retries of one call count once).
    calls: Counter[str] = field(default_factory=Counter)
    #: HTTP requests sent, retries included.
    attempts: int = 0
    #: Conditional appends and state saves refused because the version had moved on.
    version_conflicts: int = 0
    #: Transactions and batch items we sent again (throttled, conflicting, unprocessed).
    resends: int = 0
    #: TransactWriteItems that DynamoDB cancelled, for any reason (conditions, conflicts).
    cancelled_transactions: int = 0
    #: Appends refused because another worker held the conversation's lease (no call:
    #: decided from META as read, or after a cancelled transaction).
    lease_busy: int = 0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


class Events(Protocol):
    """botocore's event hooks of a client (``before-send.dynamodb.GetItem``, ...)."""

    def register(self, event_name: str, handler: object) -> None: ...

    def unregister(self, event_name: str, handler: object) -> None: ...


class _Meta(Protocol):
    @property
    def events(self) -> Events: ...


class _Client(Protocol):
    """What we use of aiobotocore's DynamoDB client (it has no type stubs here): its event
    hooks, and its generated methods, looked up by :func:`botocore.xform_name`."""

    @property
    def meta(self) -> _Meta: ...


_Method = Callable[..., Awaitable[Wire]]


class Table:
    """The table ``name`` through one aiobotocore client, opened by ``async with``."""

    def __init__(
        self,
        name: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        retry_mode: str,
        max_attempts: int,
        connect_timeout: float,
        read_timeout: float,
        max_pool_connections: int,
        session: AioSession | None = None,
    ) -> None:
        self.name = name
        self._session = session
        self.stats = DynamoStats()
        self._endpoint_url = endpoint_url
        self._region = region
        self._config = AioConfig(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
        )
        self._stack: AsyncExitStack | None = None
        self._client: _Client | None = None

    async def open(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            creator = (self._session or AioSession()).create_client(
                "dynamodb",
                endpoint_url=self._endpoint_url,
                region_name=self._region,
                config=self._config,
            )
            client = cast(_Client, await stack.enter_async_context(creator))
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, NoRegionError):
                raise ConfigError(NO_REGION) from exc
            if isinstance(exc, BotoCoreError):
                raise StoreUnavailable(f"cannot set up the DynamoDB client: {exc}") from exc
            raise
        client.meta.events.register("before-call.dynamodb", self._count_call)
        client.meta.events.register("before-send.dynamodb", self._count_attempt)
        self._stack, self._client = stack, client

    @property
    def events(self) -> Events:
        """The open client's event hooks: for metrics, and for tests to inject faults."""
        if self._client is None:
            raise StoreUnavailable("the DynamoDB store is not open (use `async with store:`)")
        return self._client.meta.events

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def _count_call(self, model: object, **_: object) -> None:
        self.stats.calls[str(getattr(model, "name", "?"))] += 1

    def _count_attempt(self, **_: object) -> None:
        self.stats.attempts += 1

    # -- calls ----------------------------------------------------------------------------

    async def call(self, operation: str, **params: object) -> Wire:
        """One API call, with botocore's errors translated."""
        if self._client is None:
            raise StoreUnavailable("the DynamoDB store is not open (use `async with store:`)")
        try:
            method = cast(_Method, getattr(self._client, xform_name(operation)))
            return await method(**params)
        except ClientError as exc:
            raise self._translate(operation, exc) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"cannot reach DynamoDB ({operation}): {exc}") from exc

    def _translate(self, operation: str, exc: ClientError) -> StoreError:
        response = cast(Wire, exc.response)
        error = cast(dict[str, str], response.get("Error", {}))
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        if code == "ConditionalCheckFailedException":
            old = response.get("Item")
            return ConditionFailed(from_wire(old) if old else None)
        if code == "TransactionCanceledException":
            return Cancelled(
                [
                    Reason(
                        str(r.get("Code", "None")), from_wire(r["Item"]) if "Item" in r else None
                    )
                    for r in cast(list[Wire], response.get("CancellationReasons", []))
                ],
                resent=_retry_attempts(response) > 0,
            )
        if code in THROTTLED:
            retries = _retry_attempts(response)
            return StoreUnavailable(
                f"DynamoDB is throttling {operation} on table {self.name!r} "
                f"(still after {retries} retries); try again shortly"
            )
        if code == "ResourceNotFoundException":
            return StoreUnavailable(
                f"the DynamoDB table {self.name!r} does not exist: "
                "create it with `personabridge db create`"
            )
        if code == "ValidationException":
            return StoreError(f"DynamoDB refused {operation}: {message}")
        return StoreUnavailable(f"DynamoDB {operation} failed: {code}: {message}")

    async def get(self, key: Key, *, consistent: bool = True) -> Item | None:
        response = await self.call(
            "GetItem", TableName=self.name, Key=to_wire(key), ConsistentRead=consistent
        )
        found = response.get("Item")
        return from_wire(found) if found else None

    async def put(self, item: Mapping[str, object], **params: object) -> Wire:
        return await self.call("PutItem", TableName=self.name, Item=to_wire(item), **params)

    async def update(self, key: Key, **params: object) -> Wire:
        return await self.call("UpdateItem", TableName=self.name, Key=to_wire(key), **params)

    async def delete(self, key: Key, **params: object) -> Wire:
        return await self.call("DeleteItem", TableName=self.name, Key=to_wire(key), **params)

    async def query(self, limit: int | None, **params: object) -> list[Item]:
        """The items of a Query (strongly consistent), following ``LastEvaluatedKey``
        until ``limit`` items are in (all of them for None)."""
        items: list[Item] = []
        start: Wire | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            response = await self.call(
                "Query", TableName=self.name, ConsistentRead=True, **params, **extra
            )
            items.extend(from_wire(item) for item in cast(list[Wire], response.get("Items", [])))
            start = cast(Wire | None, response.get("LastEvaluatedKey"))
            if not start or (limit is not None and len(items) >= limit):
                return items if limit is None else items[:limit]

    async def batch_get(self, keys: Sequence[Key]) -> list[Item]:
        """The items that exist among ``keys`` (strongly consistent), in no set order."""
        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: Wire = {
                self.name: {
                    "Keys": [to_wire(k) for k in keys[start : start + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(RETRY_ATTEMPTS):
                response = await self.call("BatchGetItem", RequestItems=request)
                items = cast(dict[str, list[Wire]], response.get("Responses", {}))
                found.extend(from_wire(item) for item in items.get(self.name, []))
                request = cast(Wire, response.get("UnprocessedKeys") or {})
                if not request:
                    break
                await self._pause(attempt, "BatchGetItem")
            else:
                raise StoreUnavailable("DynamoDB kept leaving BatchGetItem keys unprocessed")
        return found

    async def batch_write(
        self, *, puts: Sequence[Mapping[str, object]] = (), deletes: Sequence[Key] = ()
    ) -> None:
        """Put and delete items, 25 a call; unprocessed items are sent again."""
        requests: list[Wire] = [{"PutRequest": {"Item": to_wire(item)}} for item in puts]
        requests += [{"DeleteRequest": {"Key": to_wire(key)}} for key in deletes]
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: Wire = {self.name: requests[start : start + BATCH_WRITE_MAX]}
            for attempt in range(RETRY_ATTEMPTS):
                response = await self.call("BatchWriteItem", RequestItems=pending)
                pending = cast(Wire, response.get("UnprocessedItems") or {})
                if not pending:
                    break
                await self._pause(attempt, "BatchWriteItem")
            else:
                raise StoreUnavailable("DynamoDB kept leaving BatchWriteItem items unprocessed")

    async def transact(self, actions: Sequence[Wire]) -> None:
        """TransactWriteItems: all of ``actions`` or none. A transaction cancelled only
        by throttling or by a conflicting transaction is sent again; any failed
        condition raises :class:`Cancelled` at once.

        botocore gives each call a ``ClientRequestToken`` (an idempotency token of the
        API), so its own resends of a call (after a timeout or a lost answer) are
        idempotent on DynamoDB. A server that ignores the token (moto, some emulators)
        fails a resend on our own write: :attr:`Cancelled.resent` says when that may be."""
        if len(actions) > TRANSACT_MAX:
            raise StoreError(f"a DynamoDB transaction holds at most {TRANSACT_MAX} items")
        for attempt in range(RETRY_ATTEMPTS):
            try:
                await self.call("TransactWriteItems", TransactItems=list(actions))
                return
            except Cancelled as cancelled:
                self.stats.cancelled_transactions += 1
                codes = {reason.code for reason in cancelled.reasons} - {"None"}
                if "ConditionalCheckFailed" in codes or not codes <= THROTTLED | {
                    "TransactionConflict"
                }:
                    raise
                if attempt + 1 == RETRY_ATTEMPTS:
                    if codes & THROTTLED:
                        raise StoreUnavailable(
                            f"DynamoDB is throttling writes to table {self.name!r}; "
                            "try again shortly"
                        ) from cancelled
                    raise
                await self._pause(attempt, "TransactWriteItems")

    async def _pause(self, attempt: int, operation: str) -> None:
        self.stats.resends += 1
        await asyncio.sleep(RETRY_PAUSE.delay(attempt + 1))

    # -- transaction actions ----------------------------------------------------------------

    def put_action(self, item: Mapping[str, object], **params: object) -> Wire:
        return {"Put": {"TableName": self.name, "Item": to_wire(item), **params}}

    def update_action(self, key: Key, **params: object) -> Wire:
        return {"Update": {"TableName": self.name, "Key": to_wire(key), **params}}

    def delete_action(self, key: Key, **params: object) -> Wire:
        return {"Delete": {"TableName": self.name, "Key": to_wire(key), **params}}

    def check_action(self, key: Key, condition: str, **params: object) -> Wire:
        return {
            "ConditionCheck": {
                "TableName": self.name,
                "Key": to_wire(key),
                "ConditionExpression": condition,
                **params,
            }
        }


def _retry_attempts(response: Wire) -> int:
    """How many times botocore resent the request this answer ends."""
    return int(cast(Wire, response.get("ResponseMetadata", {})).get("RetryAttempts", 0))
