"""Two workers on one store answer the same conversations: each reply next to its own
message (issue 15), on SQLite (two connections to one file, as two processes have) and
on DynamoDB (two clients on one table of moto's server, serialised).

Each worker is an engine with its own store object: nothing they share but the store.
Messages of the same conversations arrive at both at once, so without the store's lease
a reply lands after the other worker's message ("A, B, answer to A")."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import tests.support.engine as engine_tests
from bot.backends.guard import GuardPolicy
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.errors import BackendUnavailable
from bot.leases import STILL_ANSWERING
from bot.messages import (
    ConversationKey,
    Incoming,
    ReplyDone,
    ReplyKind,
    TextDelta,
    Turn,
    account_owner,
)
from bot.store.base import Store
from bot.store.sqlite import SqliteStore
from tests.support.fakes import ScriptedBackend, WindowEcho

UNLIMITED = RateLimitSettings(per_minute=1e9, burst=10**9)
PATIENT = GuardPolicy(first_delta_timeout=30.0, total_timeout=60.0, retries=0, retry_backoff=0)

StorePair = Callable[[], AbstractAsyncContextManager[tuple[Store, Store]]]


@dataclass
class LeaseWaits:
    """Our Metrics protocol, counting the engine's waits for a busy conversation."""

    errors: list[str] = field(default_factory=list)

    def message_in(self, platform: str) -> None:
        pass

    def message_out(self, platform: str, kind: str) -> None:
        pass

    def backend_latency(self, backend: str, seconds: float) -> None:
        pass

    def error(self, kind: str) -> None:
        self.errors.append(kind)

    def rate_limited(self, platform: str) -> None:
        pass

    @property
    def waits(self) -> int:
        return self.errors.count("lease_wait")


@pytest.fixture(params=["sqlite", "dynamodb"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> StorePair:
    @asynccontextmanager
    async def sqlite() -> AsyncIterator[tuple[Store, Store]]:
        path = tmp_path / "shared.db"
        async with SqliteStore(path) as first, SqliteStore(path) as second:
            yield first, second

    @asynccontextmanager
    async def dynamodb() -> AsyncIterator[tuple[Store, Store]]:
        make: Any = request.getfixturevalue("dynamo_stores")
        async with make() as first, make(table=first.table.name) as second:
            yield first, second

    return sqlite if request.param == "sqlite" else dynamodb


def worker(store: Store, metrics: LeaseWaits, **settings: Any) -> Engine:
    return engine_tests.build_engine(
        store,
        WindowEcho(pause=0.02, chunk=4),
        policy=PATIENT,
        rate_limit=UNLIMITED,
        metrics=metrics,
        settings=EngineSettings(window_max_turns=60, **settings),
    )


def web(account_id: str, text: str) -> Incoming:
    return Incoming("web", account_id, "Alice", account_id, True, text, account_id=account_id)


def assert_paired(turns: tuple[Turn, ...]) -> None:
    """Every reply is the turn right after its own message, and says so."""
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            asked = turns[index - 1]
            assert asked.role == "user", [t.text for t in turns]
            assert turn.reply_to == asked.seq
            assert turn.text.startswith(f"re:{asked.text} saw:"), (asked.text, turn.text)


async def test_replies_stay_next_to_their_messages_across_two_workers(
    two_stores: StorePair,
) -> None:
    async with two_stores() as (first, second):
        accounts = [(await first.create_account(f"u{n}", "h", 1.0)).id for n in range(4)]
        metrics = LeaseWaits(), LeaseWaits()
        workers = worker(first, metrics[0]), worker(second, metrics[1])
        pauses = random.Random(15)

        async def sender(side: int, account_id: str) -> None:
            for i in range(4):
                await asyncio.sleep(pauses.uniform(0, 0.05))
                done = await engine_tests.reply(workers[side], web(account_id, f"w{side}-m{i}"))
                assert done.kind is ReplyKind.CHAT, done

        await asyncio.gather(*(sender(side, a) for a in accounts for side in (0, 1)))
        for account_id in accounts:
            key = ConversationKey(account_owner(account_id), "ada", "direct")
            turns = (await second.load_window(key, 100)).turns
            users = [t.text for t in turns if t.role == "user"]
            assert sorted(users) == sorted(f"w{s}-m{i}" for s in (0, 1) for i in range(4))
            assert len(turns) == 16
            assert_paired(turns)
    assert metrics[0].waits + metrics[1].waits > 0, "the workers never contended"


async def test_past_the_wait_the_message_is_kept_for_retry(two_stores: StorePair) -> None:
    """A worker that waits no longer than the lease allows stores the message without
    the lease, says so once, and /retry answers it next to its own message."""
    async with two_stores() as (first, second):
        account_id = (await first.create_account("alice", "h", 1.0)).id
        slow = engine_tests.build_engine(
            first,
            WindowEcho(pause=0.3, chunk=4),
            policy=PATIENT,
            rate_limit=UNLIMITED,
        )
        impatient = worker(second, LeaseWaits(), lease_wait_seconds=0.0)
        answering = asyncio.create_task(engine_tests.reply(slow, web(account_id, "first")))
        key = ConversationKey(account_owner(account_id), "ada", "direct")
        for _ in range(200):  # until the slow worker's turn (and lease) is stored
            if (await second.load_window(key, 1)).turns:
                break
            await asyncio.sleep(0.01)
        busy = await engine_tests.reply(impatient, web(account_id, "second"))
        assert (busy.kind, busy.text) == (ReplyKind.ERROR, STILL_ANSWERING)
        assert (await answering).kind is ReplyKind.CHAT
        retried = await engine_tests.reply(impatient, web(account_id, "/retry"))
        assert retried.kind is ReplyKind.CHAT and retried.text.startswith("re:second")
        turns = (await first.load_window(key, 10)).turns
        assert [t.text.split(" ")[0] for t in turns] == ["first", "second", "re:first", "re:second"]
        assert [t.reply_to for t in turns] == [None, None, 1, 2]
        shown = await slow.recent_turns(key.owner, "ada", "direct")
        assert [t.text.split(" ")[0] for t in shown] == ["first", "re:first", "second", "re:second"]


async def test_a_web_message_costs_three_dynamodb_calls(dynamo_stores: Any) -> None:
    """What /chat/send does per message, on DynamoDB: the session's account (from this
    worker's session cache while it is fresh), then the engine (one BatchGetItem with
    the preferences and the window, two TransactWriteItems that also take and release
    the conversation's lease)."""
    from auth import TEST_PARAMS, AccountService, PasswordHasher

    async with dynamo_stores() as store:
        accounts = AccountService(
            store, hasher=PasswordHasher(TEST_PARAMS), session_cache_seconds=60.0
        )
        account = await accounts.sign_up("alice", "correct horse battery")
        session = await accounts.sessions.start(account.id)
        engine = worker(store, LeaseWaits())
        costs, writes = [], store.stats.calls["TransactWriteItems"]
        for n in range(4):
            before = store.stats.total_calls
            speaker = await accounts.session_account(session.token)
            assert speaker is not None
            done = await engine_tests.reply(engine, web(speaker.id, f"hello {n}"))
            assert done.kind is ReplyKind.CHAT
            costs.append(store.stats.total_calls - before)
        # the first reads the session, the account and (no prefetch plan yet) the window
        assert costs[1:] == [3, 3, 3]
        assert store.stats.calls["TransactWriteItems"] - writes == 8  # no lease call


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(BackendUnavailable("down"), id="backend-failed"),
        pytest.param("   ", id="empty-reply"),
    ],
)
async def test_a_reply_not_stored_frees_the_lease_at_once(
    two_stores: StorePair, failure: object
) -> None:
    """The backend failed (or said nothing): the other worker need not wait for the
    lease to expire to answer the conversation's next message."""
    async with two_stores() as (first, second):
        account_id = (await first.create_account("alice", "h", 1.0)).id
        failing = engine_tests.build_engine(
            first, ScriptedBackend("scripted", [failure]), policy=PATIENT, rate_limit=UNLIMITED
        )
        done = await engine_tests.reply(failing, web(account_id, "first"))
        assert done.kind is ReplyKind.ERROR
        other = worker(second, LeaseWaits(), lease_wait_seconds=0.0)
        done = await engine_tests.reply(other, web(account_id, "second"))
        assert done.kind is ReplyKind.CHAT, done


async def test_retry_waits_for_the_other_workers_answer(two_stores: StorePair) -> None:
    """/retry answers too: it takes the lease like a message (here, it cannot wait)."""
    async with two_stores() as (first, second):
        account_id = (await first.create_account("alice", "h", 1.0)).id
        slow = engine_tests.build_engine(
            first, WindowEcho(pause=0.3, chunk=4), policy=PATIENT, rate_limit=UNLIMITED
        )
        assert (await engine_tests.reply(slow, web(account_id, "first"))).kind is ReplyKind.CHAT
        answering = asyncio.create_task(engine_tests.reply(slow, web(account_id, "second")))
        key = ConversationKey(account_owner(account_id), "ada", "direct")
        for _ in range(200):  # until the second message (and its lease) is stored
            if len((await second.load_window(key, 5)).turns) == 3:
                break
            await asyncio.sleep(0.01)
        impatient = worker(second, LeaseWaits(), lease_wait_seconds=0.0)
        busy = await engine_tests.reply(impatient, web(account_id, "/retry"))
        assert (busy.kind, busy.text) == (ReplyKind.ERROR, STILL_ANSWERING)
        assert (await answering).kind is ReplyKind.CHAT
        turns = (await first.load_window(key, 10)).turns
        assert [t.reply_to for t in turns] == [None, 1, None, 3]


async def test_a_long_reply_renews_its_lease(two_stores: StorePair) -> None:
    """A reply streaming longer than the lease keeps it: another worker cannot take
    the conversation in the middle (it would without the renewals)."""
    async with two_stores() as (first, second):
        account_id = (await first.create_account("alice", "h", 1.0)).id
        slow = engine_tests.build_engine(
            first,
            WindowEcho(pause=0.25, chunk=1),
            policy=PATIENT,
            rate_limit=UNLIMITED,
            settings=EngineSettings(lease_seconds=2.0),
        )
        streamed = asyncio.Event()

        async def answer() -> ReplyDone:
            deltas = 0
            done = None
            async for event in slow.handle(web(account_id, "first")):
                if isinstance(event, TextDelta):
                    deltas += 1
                    if deltas == 10:  # 2.5 s of streaming: past the 2 s lease taken first
                        streamed.set()
                elif isinstance(event, ReplyDone):
                    done = event
            assert done is not None
            return done

        answering = asyncio.create_task(answer())
        await asyncio.wait_for(streamed.wait(), 60)
        impatient = worker(second, LeaseWaits(), lease_wait_seconds=0.0)
        busy = await engine_tests.reply(impatient, web(account_id, "second"))
        assert (busy.kind, busy.text) == (ReplyKind.ERROR, STILL_ANSWERING)
        assert (await answering).kind is ReplyKind.CHAT
