"""A worker SIGKILLed while it holds a conversation's lease (issue 15): the lease
expires, the other worker answers the conversation's next message, and nothing is lost
(the dead worker's message stays stored, for /retry). On SQLite and on DynamoDB
(moto's server, serialised)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine_parts import build_engine
from bot.messages import ConversationKey, Incoming, ReplyDone, ReplyKind, account_owner
from bot.pairing import paired
from bot.personas import PersonaLibrary
from bot.store.base import Store
from bot.store.sqlite import SqliteStore
from tests.support.fakes import WindowEcho, make_persona

CHILD = Path(__file__).with_name("lease_child.py")
ROOT = Path(__file__).resolve().parents[2]
WITHIN = 60.0

#: A store for the test, and the arguments that open the same one in the child.
Opened = tuple[Store, list[str]]
OpenStore = Callable[[], AbstractAsyncContextManager[Opened]]


@pytest.fixture(params=["sqlite", "dynamodb"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
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


class Errors:
    """Our Metrics protocol, keeping the error kinds the engine counts."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def message_in(self, platform: str) -> None:
        pass

    def message_out(self, platform: str, kind: str) -> None:
        pass

    def backend_latency(self, backend: str, seconds: float) -> None:
        pass

    def error(self, kind: str) -> None:
        self.kinds.append(kind)

    def rate_limited(self, platform: str) -> None:
        pass


async def kill_while_holding(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT / "tests" / "reliability",
        env=env,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), WITHIN)
        if line.strip() != b"HOLDING":
            stderr = await process.stderr.read() if process.stderr else b""
            raise AssertionError(f"the child did not get the lease: {stderr.decode()[-2000:]}")
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), WITHIN) == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_killed_workers_lease_expires_and_the_other_answers(
    shared_store: OpenStore,
) -> None:
    async with shared_store() as (store, args):
        account_id = (await store.create_account("alice", "h", 1.0)).id
        await kill_while_holding([*args, account_id])
        backend, errors = WindowEcho(chunk=100), Errors()
        survivor = build_engine(
            store,
            PersonaLibrary([make_persona("ada", "Professor Ada", backend=backend.name)]),
            ReplyGuard({backend.name: backend}, GuardPolicy(retries=0)),
            settings=EngineSettings(summary=False, lease_wait_seconds=WITHIN),
            rate_limit=RateLimitSettings(per_minute=1e9, burst=10**9),
            metrics=errors,
        )
        message = Incoming(
            "web", account_id, "A", account_id, True, "from B", account_id=account_id
        )
        done = None
        async for event in survivor.handle(message):
            if isinstance(event, ReplyDone):
                done = event
        assert done is not None and done.kind is ReplyKind.CHAT, done
        assert done.text.startswith("re:from B")
        assert "lease_wait" in errors.kinds  # the dead worker's lease held it, then expired
        key = ConversationKey(account_owner(account_id), "ada", "direct")
        turns = (await store.load_window(key, 10)).turns
        assert [(t.text.split(" ")[0], t.reply_to) for t in turns] == [
            ("from", None),  # the dead worker's message: kept, unanswered
            ("from", None),
            ("re:from", 2),
        ]
        assert [t.text for t in paired(turns)][:2] == ["from A", "from B"]
        retried = None
        async for event in survivor.handle(Incoming(
            "web", account_id, "A", account_id, True, "/retry", account_id=account_id
        )):  # fmt: skip
            if isinstance(event, ReplyDone):
                retried = event
        assert retried is not None and retried.kind is ReplyKind.CHAT
