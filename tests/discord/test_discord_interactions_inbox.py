"""HTTP interactions on several workers: a command is deferred only once it is stored,
one interaction is answered by one worker, and a command a dead worker deferred is
answered by another (issue 14 item 3, issue 15 item 2)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.web import create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.errors import StoreUnavailable
from bot.store.memory import MemoryStore
from tests.discord.test_discord_http_interactions import KEY, Endpoint
from tests.support.discord_harness import build_engine, fast_adapter, slash
from tests.support.discord_server import FakeDiscord
from tests.support.fakes import TextBackend

Client = TestClient[web.Request, web.Application]
MakeWorker = Callable[..., Awaitable[Endpoint]]


#: Store operations that fail (our MemoryStore's fault hook), for the test that needs it.
FAILING: set[str] = set()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    FAILING.clear()
    hook = lambda operation: StoreUnavailable("disk full") if operation in FAILING else None  # noqa: E731
    async with MemoryStore(fail=hook) as memory:
        yield memory


@pytest.fixture
async def make_worker(
    fake: FakeDiscord, store: MemoryStore, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[MakeWorker]:
    """Workers of one deployment: each its own engine and web app, all on one store."""
    stack = AsyncExitStack()

    async def make(**option_changes: float) -> Endpoint:
        engine = build_engine(store, TextBackend("the answer", chunk=100))
        settings = fake.settings(token=None, public_key=KEY.verify_key.encode().hex())
        adapter = fast_adapter(engine, settings, events=store, **option_changes)
        accounts = AccountService(store, hasher=PasswordHasher(TEST_PARAMS))
        app = create_app(engine, accounts, upkeep=store, extra_routes=adapter.web_routes())
        await stack.enter_async_context(adapter)
        return Endpoint(await aiohttp_client(app), adapter, fake)

    async with stack:
        yield make


async def test_one_interaction_sent_to_two_workers_is_answered_once(
    make_worker: MakeWorker, fake: FakeDiscord
) -> None:
    first, second = await make_worker(), await make_worker()
    command = slash("chat", message="hello")
    answers = await asyncio.gather(first.post(command), second.post(command))
    assert sorted(status for status, _ in answers) == [200, 401]
    pieces = await first.reply(slash("chat", message="next"))  # both settle
    assert pieces == ["the answer"]
    assert fake.transcript(token=command["token"]) == ["the answer"]


async def test_a_command_is_not_deferred_when_it_cannot_be_stored(
    make_worker: MakeWorker, store: MemoryStore, fake: FakeDiscord
) -> None:
    worker = await make_worker()
    FAILING.add("claim_event")
    status, _ = await worker.post(slash("chat", message="hello"))
    assert status == 503
    assert fake.transcript(token=slash("chat", message="x")["token"]) == []
    FAILING.clear()
    assert await worker.reply(slash("chat", message="hello")) == ["the answer"]


async def test_a_command_left_deferred_by_a_dead_worker_is_answered(
    make_worker: MakeWorker, store: MemoryStore, fake: FakeDiscord
) -> None:
    command = slash("chat", message="hello")
    now = time.time()
    # what a worker killed right after deferring leaves: the command in the inbox
    await store.claim_event(
        "discord",
        command["id"],
        now - 5,
        now + 900,
        payload=json.dumps(command),
        hold_until=now - 1,
    )
    await make_worker(inbox_sweep_seconds=0.1)
    await fake.wait_for(lambda: fake.transcript(token=command["token"]) == ["the answer"] or None)
    assert await store.take_inbox("discord", now + 800, now + 900, 10) == []
