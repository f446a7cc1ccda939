"""DynamoStore under the engine: two processes on one table, calls per message, faults.

Runs against moto's DynamoDB server on loopback (``dynamo_stores`` in ``conftest.py``);
faults are injected into botocore's own event hooks of a store's client (a response
returned from ``before-send`` replaces the HTTP exchange, and botocore then retries it
as it would a real one), not by mocking our code.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiobotocore.awsrequest import AioAWSResponse
from botocore.exceptions import ConnectionClosedError

import tests.support.engine as engine_tests
from bot.backends.guard import GuardPolicy
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import REPLY_NOT_KEPT, STORE_TROUBLE, Engine
from bot.messages import ConversationKey, Identity, Incoming, ReplyKind, account_owner, guest_owner
from bot.retrying import StoreRetry
from bot.store.base import Account
from bot.store.dynamo import DynamoStore
from tests.support.fakes import WindowEcho

UNLIMITED = RateLimitSettings(per_minute=1e9, burst=10**9)
#: moto answers a few hundred calls a second, one at a time: under 100 concurrent
#: senders the event loop waits long for it, so the backend's deadlines are generous
PATIENT = GuardPolicy(first_delta_timeout=30.0, total_timeout=60.0, retries=0, retry_backoff=0)
REPLY = re.compile(r"re:(?P<text>.*) saw:\[(?P<saw>.*)\]")


def engine_on(
    store: DynamoStore, *, pause: float = 0.0, window: int = 40, chunk: int = 7
) -> Engine:
    """An engine whose backend streams its reply in ``chunk``-character pieces, each
    after ``pause`` seconds."""
    return engine_tests.build_engine(
        store,
        WindowEcho(pause=pause, chunk=chunk),
        policy=PATIENT,
        rate_limit=UNLIMITED,
        settings=EngineSettings(window_max_turns=window),
    )


def dm(platform: str, user: str, text: str) -> Incoming:
    return Incoming(platform, user, user.title(), chat_id=user, private=True, text=text)


def direct(owner: str) -> ConversationKey:
    return ConversationKey(owner, "ada", "direct")  # type: ignore[arg-type]


# -- fault injection through botocore's events -----------------------------------------


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


def error_response(url: str, code: str, status: int = 400, **extra: object) -> AioAWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", **extra})
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "injected"}
    return AioAWSResponse(url, status, headers, _Body(body.encode()))


class Faults:
    """Answers the next ``times`` requests of ``operation`` (all when None) that pass
    ``when`` with a DynamoDB error, in place of the server."""

    def __init__(
        self,
        store: DynamoStore,
        operation: str,
        code: str,
        *,
        times: int | None = None,
        when: Callable[[bytes], bool] = lambda body: True,
    ) -> None:
        self.event = f"before-send.dynamodb.{operation}"
        self.store, self.code, self.left, self.when = store, code, times, when
        self.injected = 0

    def __call__(self, request: Any, **_: object) -> AioAWSResponse | None:
        if self.left == 0 or not self.when(bytes(request.body or b"")):
            return None
        if self.left is not None:
            self.left -= 1
        self.injected += 1
        return error_response(request.url, self.code, message="injected by the test")

    def __enter__(self) -> Faults:
        self.store.table.events.register(self.event, self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.store.table.events.unregister(self.event, self)


# -- two processes on one table ---------------------------------------------------------


async def test_two_engines_on_one_table_keep_every_turn_in_order(dynamo_stores: Any) -> None:
    """50 accounts, each linked from Telegram (served by one engine and store, as one
    process would) and Discord (another engine, another client): 500 concurrent messages,
    5 per identity. Every conversation ends with all 20 of its turns, once each, each
    sender's in the order sent, every reply after its message, nothing of another
    conversation anywhere; and the two processes did race (version conflicts, retried)."""
    async with dynamo_stores() as first, dynamo_stores(table=first.table.name) as second:

        async def account(n: int) -> Account:
            made = await first.create_account(f"user{n}", "h", 1.0)
            await first.link_identity(Identity("telegram", f"t{n}"), f"T{n}", made.id, 2.0)
            await second.link_identity(Identity("discord", f"d{n}"), f"D{n}", made.id, 3.0)
            return made

        accounts = await asyncio.gather(*(account(n) for n in range(50)))
        # Replies take seconds, as a model's do, and people pause between messages.
        # moto answers one request at a time, so a call waits its turn; were that wait
        # as long as a reply, one process could keep writing first until the other ran
        # out of the engine's five attempts (which do not back off). Windows of 6
        # turns: moto is slow to serve a prefetched window.
        telegram = engine_on(first, pause=2.0, window=6, chunk=1000)
        discord = engine_on(second, pause=2.0, window=6, chunk=1000)
        pauses = random.Random(6)

        async def sender(engine: Engine, platform: str, n: int) -> None:
            user = f"{platform[0]}{n}"
            await asyncio.sleep(pauses.uniform(0, 1))
            for i in range(5):
                done = await engine_tests.reply(engine, dm(platform, user, f"{user}-m{i}"))
                assert done.kind is ReplyKind.CHAT, done
                await asyncio.sleep(pauses.uniform(0, 0.5))

        await asyncio.gather(
            *(
                sender(e, p, n)
                for n in range(50)
                for e, p in ((telegram, "telegram"), (discord, "discord"))
            )
        )

        conflicts = first.stats.version_conflicts + second.stats.version_conflicts
        for n, account in enumerate(accounts):
            window = await first.load_window(direct(account_owner(account.id)), 100)
            turns = window.turns
            assert [t.seq for t in turns] == list(range(1, 21))
            mine = {f"{u}{n}-m{i}" for u in "td" for i in range(5)}
            users = [t.text for t in turns if t.role == "user"]
            assert sorted(users) == sorted(mine)  # all, once each
            for u in "td":
                assert [t for t in users if t.startswith(f"{u}{n}-")] == [
                    f"{u}{n}-m{i}" for i in range(5)
                ]
            for index, turn in enumerate(turns):
                if turn.role == "user":
                    continue
                match = REPLY.fullmatch(turn.text)
                assert match is not None, turn.text
                answered = match["text"]
                assert answered in mine
                assert answered in [t.text for t in turns[:index] if t.role == "user"]
                seen = [s for s in match["saw"].split("|") if s]
                assert set(seen) <= mine, f"cross-talk in {account.username}: {seen}"
        assert conflicts > 0, "the two processes never raced: the test proves nothing"


# -- DynamoDB calls per chat message ----------------------------------------------------


async def calls_for(store: DynamoStore, engine: Engine, message: Incoming) -> int:
    before = store.stats.total_calls
    done = await engine_tests.reply(engine, message)
    assert done.kind is ReplyKind.CHAT, done
    return store.stats.total_calls - before


async def test_a_chat_message_costs_three_calls(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        engine = engine_on(store)
        guest = [await calls_for(store, engine, dm("telegram", "g", f"hi {n}")) for n in range(4)]
        account = await store.create_account("alice", "h", 1.0)
        await store.link_identity(Identity("telegram", "a"), "Alice", account.id, 2.0)
        linked = [await calls_for(store, engine, dm("telegram", "a", f"yo {n}")) for n in range(4)]
        # the web knows the account from its session: no identity to resolve
        web = replace(dm("web", "a", ""), account_id=account.id)
        on_web = [await calls_for(store, engine, replace(web, text=f"w {n}")) for n in range(3)]
    # the first message of an identity here reads its window with a Query; a linked
    # identity's first also fetches its account's preferences
    assert guest == [4, 3, 3, 3]
    assert linked[0] in (4, 5) and linked[1:] == [3, 3, 3]
    assert on_web == [3, 3, 3]


async def test_turns_written_by_another_process_are_in_the_next_window(
    dynamo_stores: Any,
) -> None:
    """The window read along with the identity is only used when META, read in the
    same call, says it is complete: another process's turns are never missed."""
    async with dynamo_stores() as first, dynamo_stores(table=first.table.name) as second:
        account = await first.create_account("alice", "h", 1.0)
        await first.link_identity(Identity("telegram", "a"), "Alice", account.id, 2.0)
        await first.link_identity(Identity("discord", "a"), "Alice", account.id, 2.0)
        here, there = engine_on(first), engine_on(second)
        await engine_tests.reply(here, dm("telegram", "a", "one"))
        for others in (1, 3):  # within the prefetch's slack (one message), then beyond it
            for n in range(others):
                await engine_tests.reply(there, dm("discord", "a", f"there {others}.{n}"))
            before = first.stats.total_calls
            done = await engine_tests.reply(here, dm("telegram", "a", f"here {others}"))
            match = REPLY.fullmatch(done.text)
            assert match is not None
            assert match["saw"].split("|")[-others:] == [
                f"there {others}.{n}" for n in range(others)
            ]
            assert first.stats.total_calls - before == (3 if others == 1 else 4)


async def test_what_this_process_remembers_never_outlives_a_forget_or_reset_elsewhere(
    dynamo_stores: Any,
) -> None:
    """Process A remembers its conversation's recent turns; process B forgets the owner,
    then resets the new conversation: A's windows show exactly what is stored."""
    async with dynamo_stores() as here, dynamo_stores(table=here.table.name) as there:
        engine = engine_on(here)
        owner = guest_owner(Identity("telegram", "u"))
        for text in ("secret 1", "secret 2"):
            await engine_tests.reply(engine, dm("telegram", "u", text))
        await there.forget_owner(owner)
        after_forget = await engine_tests.reply(engine, dm("telegram", "u", "fresh"))
        assert after_forget.text == "re:fresh saw:[]"
        await there.reset_conversation(direct(owner))
        after_reset = await engine_tests.reply(engine, dm("telegram", "u", "again"))
        assert after_reset.text == "re:again saw:[]"
        window = await here.load_window(direct(owner), 10)
        assert [t.text for t in window.turns] == ["again", "re:again saw:[]"]
        exported = await there.export_owner(owner)
        assert [[t.text for t in r.turns] for r in exported] == [
            ["fresh", "re:fresh saw:[]"],
            ["again", "re:again saw:[]"],
        ]


# -- throttling and failures ------------------------------------------------------------


async def test_throttling_is_retried_by_botocore(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        engine = engine_on(store)
        with (
            Faults(
                store, "TransactWriteItems", "ProvisionedThroughputExceededException", times=2
            ) as writes,
            Faults(store, "BatchGetItem", "ThrottlingException", times=1) as reads,
        ):
            done = await engine_tests.reply(engine, dm("telegram", "u", "hello"))
        assert done.kind is ReplyKind.CHAT
        assert (writes.injected, reads.injected) == (2, 1)
        assert store.stats.attempts - store.stats.total_calls >= 3  # resent, not failed
        window = await store.load_window(direct(guest_owner(Identity("telegram", "u"))), 10)
        assert [t.role for t in window.turns] == ["user", "assistant"]


async def test_throttling_that_lasts_is_one_clear_message_and_keeps_the_users_turn(
    dynamo_stores: Any,
) -> None:
    async with dynamo_stores(max_attempts=2) as store:
        engine = engine_on(store)
        owner = guest_owner(Identity("telegram", "u"))
        # every write of a reply is throttled, however often botocore tries
        replies = Faults(
            store,
            "TransactWriteItems",
            "ProvisionedThroughputExceededException",
            when=lambda body: b'"assistant"' in body,
        )
        with replies:
            _, done = await engine_tests.send(engine, dm("telegram", "u", "keep me"))
        assert done is not None and done.kind is ReplyKind.ERROR
        assert done.text == REPLY_NOT_KEPT
        # both attempts botocore made, for each of the engine's own attempts
        assert replies.injected == 2 * StoreRetry().attempts
        window = await store.load_window(direct(owner), 10)
        assert [(t.role, t.text) for t in window.turns] == [("user", "keep me")]
        retried = await engine_tests.reply(engine, dm("telegram", "u", "/retry"))
        assert retried.kind is ReplyKind.CHAT and retried.text.startswith("re:keep me")


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("ProvisionedThroughputExceededException", id="throttled"),
        pytest.param("AccessDeniedException", id="access-denied"),
    ],
)
async def test_a_store_that_fails_from_the_start_is_one_clear_message(
    dynamo_stores: Any, code: str
) -> None:
    async with dynamo_stores(max_attempts=2) as store:
        engine = engine_on(store)
        with Faults(store, "BatchGetItem", code):
            _, done = await engine_tests.send(engine, dm("telegram", "u", "hello?"))
        assert done is not None and (done.kind, done.text) == (ReplyKind.ERROR, STORE_TROUBLE)


class LostAnswers:
    """Lets the next ``times`` TransactWriteItems requests that pass ``when`` reach the
    server, then drops their answers (the connection closes before it is read), as a
    network can: the write is applied, and botocore, seeing no answer, sends it again."""

    event = "before-send.dynamodb.TransactWriteItems"

    def __init__(self, store: DynamoStore, *, times: int, when: Callable[[bytes], bool]) -> None:
        self.store, self.left, self.when = store, times, when
        self.dropped = 0
        self._forwarded: set[bytes] = set()

    async def __call__(self, request: Any, **_: object) -> None:
        body = bytes(request.body or b"")
        if self.left == 0 or body in self._forwarded or not self.when(body):
            return  # botocore's resend (or another request) goes to the server as it is
        self.left -= 1
        self._forwarded.add(body)
        headers = {
            str(name): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(request.url, data=body, headers=headers) as answer,
        ):
            assert answer.status == 200, await answer.text()
        self.dropped += 1
        raise ConnectionClosedError(endpoint_url=request.url)

    def __enter__(self) -> LostAnswers:
        self.store.table.events.register(self.event, self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.store.table.events.unregister(self.event, self)


async def test_a_write_whose_answer_was_lost_is_kept_once(dynamo_stores: Any) -> None:
    """botocore resends a transaction whose answer it never got; moto, as any server that
    ignores the idempotency token, then fails it on our own write. The store must see
    its own turns there, not a conflict: the engine's reload after a conflict only
    recognises its turn while it is still the newest, and the other process may have
    written since (a turn stored twice in the two-engine test, seen once under load)."""
    async with dynamo_stores() as store:
        engine = engine_on(store)
        owner = guest_owner(Identity("telegram", "u"))
        with LostAnswers(store, times=2, when=lambda body: b'"role"' in body) as lost:
            first = await engine_tests.reply(engine, dm("telegram", "u", "hello"))
            second = await engine_tests.reply(engine, dm("telegram", "u", "and again"))
        assert first.kind is ReplyKind.CHAT and second.kind is ReplyKind.CHAT
        assert lost.dropped == 2
        # the store knew its own write: no conflict for the engine to sort out
        assert store.stats.version_conflicts == 0
        window = await store.load_window(direct(owner), 20)
        assert [t.role for t in window.turns] == ["user", "assistant"] * 2
        assert [t.text for t in window.turns if t.role == "user"] == ["hello", "and again"]
        assert [t.seq for t in window.turns] == [1, 2, 3, 4]
