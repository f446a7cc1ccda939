"""Telegram's webhook acknowledges an update only once it is stored (issue 14, item 3),
and one update reaching two workers is answered once (issue 15, item 2).

``webhook_child.py`` serves the webhook on a SQLite file in a process of its own; the
test posts updates, gets every 200, and kills it with SIGKILL while it is still
answering them. Telegram never resends an update that got a 200: a new worker started
on the same file must answer every one of them from the store's inbox, each user's
turn stored once, each reply right after it. On SQLite and on DynamoDB (moto's server,
serialised).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.telegram import SECRET_HEADER
from bot.messages import ConversationKey, Identity, guest_owner
from bot.store.base import Store
from bot.store.dynamo import DynamoStore
from bot.store.sqlite import SqliteStore
from tests.support.telegram_harness import (
    SECRET,
    Person,
    build_engine,
    message,
    update,
    webhook,
)
from tests.support.telegram_server import FakeBotApi

CHILD = Path(__file__).with_name("webhook_child.py")
ROOT = Path(__file__).resolve().parents[2]
REPORT_WITHIN = 60.0
UPDATES = 20
#: The restarted worker sweeps its inbox often, so the test does not wait long.
RESTARTED = {"inbox_hold_seconds": 2.0, "inbox_sweep_seconds": 0.2}


def person(n: int) -> Person:
    return Person(id=5000 + n, first_name=f"P{n}")


def conversation(n: int) -> ConversationKey:
    return ConversationKey(guest_owner(Identity("telegram", str(person(n).id))), "ada", "direct")


def payload(n: int) -> dict[str, Any]:
    return {"update_id": 900 + n, **update(message(person(n), f"m{n}", message_id=1))}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    async with session.post(url, json=body, headers={SECRET_HEADER: SECRET}) as response:
        await response.read()
        return response.status


Opened = tuple[Store, list[str]]


@pytest.fixture(params=["sqlite", "dynamodb"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """``async with shared() as (store, where)``: a store, and the arguments that open
    it again (in a child, or here with :func:`reopen`)."""

    @asynccontextmanager
    async def sqlite() -> AsyncIterator[Opened]:
        path = tmp_path / "pb.db"
        async with SqliteStore(path) as store:
            yield store, ["sqlite", str(path)]

    @asynccontextmanager
    async def dynamodb() -> AsyncIterator[Opened]:
        make: Any = request.getfixturevalue("dynamo_stores")
        endpoint: str = request.getfixturevalue("moto_endpoint")
        async with make() as store:
            yield store, ["dynamodb", endpoint, store.table.name]

    return sqlite if request.param == "sqlite" else dynamodb


def reopen(where: list[str]) -> Store:
    if where[0] == "sqlite":
        return SqliteStore(where[1])
    return DynamoStore(where[2], endpoint_url=where[1], region="us-east-1")


async def start_child(where: list[str], api_url: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        api_url,
        *where,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), REPORT_WITHIN)).decode()
    if not line.startswith("READY "):
        process.kill()
        stderr = await process.stderr.read() if process.stderr else b""
        raise AssertionError(f"the child did not start: {stderr.decode()[-2000:]}")
    return process, line.split(" ", 1)[1].strip()


async def test_updates_acknowledged_before_a_sigkill_are_all_answered(
    shared: Callable[[], Any],
) -> None:
    async with FakeBotApi() as fake, shared() as (store, where):
        process, url = await start_child(where, fake.url)
        try:
            async with aiohttp.ClientSession() as session:
                statuses = await asyncio.gather(
                    *(post(session, url, payload(n)) for n in range(UPDATES))
                )
            assert statuses == [200] * UPDATES
            process.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), REPORT_WITHIN) == -signal.SIGKILL
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        # the next worker, on the same store
        keys = [conversation(n) for n in range(UPDATES)]
        before = [len((await store.load_window(key, 10)).turns) for key in keys]
        unanswered = sum(1 for count in before if count < 2)
        assert unanswered > 0, "the child answered everything: the kill proves nothing"

        async with webhook(build_engine(store), fake, store=store, **RESTARTED):

            def all_answered() -> bool:
                return all(
                    any(f"re:m{n} saw:[]" == shown.text for shown in fake.shown(person(n).id))
                    for n in range(UPDATES)
                )

            await fake.wait_for(all_answered, timeout=REPORT_WITHIN)
        for n, key in enumerate(keys):
            turns = (await store.load_window(key, 10)).turns
            assert [(t.role, t.text) for t in turns] == [
                ("user", f"m{n}"),
                ("assistant", f"re:m{n} saw:[]"),
            ]
            assert turns[1].reply_to == turns[0].seq
        assert await store.take_inbox("telegram", 1e12, 1e12, 100) == []


async def test_one_update_posted_to_two_workers_is_answered_once(
    shared: Callable[[], Any],
) -> None:
    async with (
        FakeBotApi() as fake,
        shared() as (first_store, where),
        reopen(where) as second_store,
        webhook(build_engine(first_store), fake, store=first_store) as first,
        webhook(build_engine(second_store), fake, store=second_store) as second,
    ):
        for n in range(10):
            body = payload(n)
            statuses = await asyncio.gather(first.post(body), second.post(body))
            assert statuses == [200, 200]
        await fake.wait_for(
            lambda: all(fake.shown(person(n).id) for n in range(10)), timeout=REPORT_WITHIN
        )
        await asyncio.sleep(0.3)  # a second answer would have come by now
        for n in range(10):
            assert [s.text for s in fake.shown(person(n).id)] == [f"re:m{n} saw:[]"]
            assert len((await first_store.load_window(conversation(n), 10)).turns) == 2
