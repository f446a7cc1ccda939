"""Forgetting and deleting while a reply is being written: nothing of the owner stays.

A reply is held half-way through its stream (a gated backend) while ``/forget
confirm`` runs, or the account is deleted with a message from its linked Telegram
identity waiting behind the reply. Before owner epochs, the reply was then stored in a
new conversation of the forgotten owner, or under the deleted account's id, reachable
by no export and no /forget. On MemoryStore and on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from bot.engine import OWNER_FORGOTTEN, Engine
from bot.messages import Identity, ReplyKind, Turn, account_owner, guest_owner
from bot.personas import Persona
from bot.store.base import BackendState, Store
from bot.store.sqlite import SqliteStore
from tests.support.engine import build_engine, dm, group, reply, send
from tests.support.stores import store_kinds

HOLD = 5.0  # at most this long for a held reply to get where the test needs it


class GatedBackend:
    """Streams ``first`` part of a reply, then waits for ``release`` before the rest."""

    name = "gated"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.calls = 0

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        self.calls += 1
        yield f"re:{message.text} "
        if not self.release.is_set():
            self.holding.set()
            await self.release.wait()
        yield "the rest"

    async def aclose(self) -> None:
        pass


store_kind = store_kinds("memory", "sqlite")


def engine_on(store: Store, backend: GatedBackend) -> Engine:
    # no time limit on the held stream: the test releases it
    from bot.backends.guard import GuardPolicy

    policy = GuardPolicy(first_delta_timeout=HOLD * 2, total_timeout=HOLD * 4, retries=0)
    return build_engine(store, backend, policy=policy)  # type: ignore[arg-type]


async def held(backend: GatedBackend) -> None:
    async with asyncio.timeout(HOLD):
        await backend.holding.wait()


def rows_of(store: Store, owner: str) -> int:
    """Conversations and turns of ``owner`` in the SQLite file (0 for other stores)."""
    if not isinstance(store, SqliteStore):
        return 0
    with sqlite3.connect(store.path) as db:
        (conversations,) = db.execute(
            "SELECT count(*) FROM conversations WHERE owner = ?", (owner,)
        ).fetchone()
        (turns,) = db.execute(
            "SELECT count(*) FROM turns JOIN conversations ON conversations.id = conversation_id"
            " WHERE owner = ?",
            (owner,),
        ).fetchone()
        (others,) = db.execute(
            "SELECT count(*) FROM preferences WHERE owner = ?", (owner,)
        ).fetchone()
    return int(conversations + turns + others)


async def test_forget_confirm_while_a_group_reply_streams(store: Store) -> None:
    """The account's Discord identity forgets while its Telegram group reply streams."""
    backend = GatedBackend()
    engine = engine_on(store, backend)
    account = await store.create_account("alice", "hash", 1.0)
    owner = account_owner(account.id)
    await store.link_identity(Identity("telegram", "alice"), "Alice", account.id, 2.0)
    await store.link_identity(Identity("discord", "alice"), "Alice", account.id, 3.0)
    streaming = asyncio.create_task(send(engine, group("alice", "tell me a story")))
    await held(backend)
    assert "/forget confirm" in (await reply(engine, dm("alice", "/forget", "discord"))).text
    forgot = await reply(engine, dm("alice", "/forget confirm", "discord"))
    assert forgot.kind is ReplyKind.COMMAND
    backend.release.set()
    deltas, done = await streaming
    assert done is not None
    assert done.kind is ReplyKind.ERROR and done.text == OWNER_FORGOTTEN
    assert deltas, "the user saw the reply being written"
    assert await store.export_owner(owner) == []
    assert rows_of(store, owner) == 0
    # the account chats again, afresh
    again = await reply(engine, group("alice", "hello again"))
    assert again.kind is ReplyKind.CHAT
    records = await store.export_owner(owner)
    assert [t.text for r in records for t in r.turns] == ["hello again", again.text]


async def test_a_guest_forgets_in_another_process_and_chats_again(store: Store) -> None:
    """Two engines on one store (two processes): one streams a guest's group reply, the
    other takes the guest's /forget confirm. The guest then chats afresh."""
    backend = GatedBackend()
    here, there = engine_on(store, backend), engine_on(store, backend)
    owner = guest_owner(Identity("telegram", "alice"))
    streaming = asyncio.create_task(send(here, group("alice", "tell me a story")))
    await held(backend)
    assert "/forget confirm" in (await reply(there, dm("alice", "/forget"))).text
    assert (await reply(there, dm("alice", "/forget confirm"))).kind is ReplyKind.COMMAND
    backend.release.set()
    _, done = await streaming
    assert done is not None and done.text == OWNER_FORGOTTEN
    assert await store.export_owner(owner) == []
    assert rows_of(store, owner) == 0
    again = await reply(here, group("alice", "hello again"))
    assert again.kind is ReplyKind.CHAT
    records = await store.export_owner(owner)
    assert [t.text for r in records for t in r.turns] == ["hello again", again.text]


async def test_account_deleted_while_a_web_reply_streams_and_telegram_waits(
    store: Store,
) -> None:
    backend = GatedBackend()
    engine = engine_on(store, backend)
    account = await store.create_account("alice", "hash", 1.0)
    owner = account_owner(account.id)
    await store.link_identity(Identity("telegram", "alice"), "Alice", account.id, 2.0)
    web = replace(dm("alice", "from the web", platform="web"), account_id=account.id)
    on_web = asyncio.create_task(send(engine, web))
    await held(backend)
    # the linked Telegram identity's message waits for the web reply (same conversation)
    on_telegram = asyncio.create_task(send(engine, dm("alice", "from telegram")))
    for _ in range(20):
        await asyncio.sleep(0)
    await store.delete_account(account.id)
    backend.release.set()
    (_, web_done), (_, tg_done) = await asyncio.gather(on_web, on_telegram)
    assert web_done is not None and web_done.text == OWNER_FORGOTTEN
    assert tg_done is not None
    assert tg_done.kind is not ReplyKind.CHAT or tg_done.text != OWNER_FORGOTTEN
    assert await store.export_owner(owner) == []
    assert rows_of(store, owner) == 0
    assert await store.owner_epoch(owner) is None
    # the identity is a guest now and chats as one
    after = await reply(engine, dm("alice", "hello?"))
    assert after.kind is ReplyKind.CHAT
    assert await store.export_owner(owner) == []
