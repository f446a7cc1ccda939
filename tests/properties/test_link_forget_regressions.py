"""Interleavings of /link and /forget that once broke (or still break) the promises.

The state machine in ``test_interleavings.py`` walks random runs; these are the
particular runs that need a long exact setup, kept as tests of their own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import Engine
from bot.linking import create_link_code
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    NewTurn,
    OwnerId,
    account_owner,
    guest_owner,
)
from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import MIGRATIONS, SqliteStore
from tests.support.interleaving_engine import Sent, build_engine, collect
from tests.support.interleaving_model import tokens_in
from tests.support.stores import store_kinds

NOW = 1_000_000.0


store_kind = store_kinds("memory", "sqlite", "sqlite-nocache")


def engine_for(store: Store) -> Engine:
    return build_engine(store, lambda: NOW)


async def texts_of(store: Store, owner: OwnerId) -> list[str]:
    return [turn.text for record in await store.export_owner(owner) for turn in record.turns]


async def test_forgotten_turns_never_come_back_after_a_link(store: Store) -> None:
    """Ann's account talks on the web and forgets; her Telegram guest history is then
    linked into the account. The account's window must be that history, not the
    forgotten conversation (SqliteStore reused the forgotten conversation's row id, and
    its window cache served the forgotten turns for the moved conversation)."""
    engine = engine_for(store)
    account = await store.create_account("Ann", "unused", NOW)
    owner = account_owner(account.id)

    def web(text: str) -> Incoming:
        return Incoming("web", account.id, "Ann", account.id, True, text, account_id=account.id)

    def telegram(text: str) -> Incoming:
        return Incoming("telegram", "101", "Ann", "101", True, text)

    for message in ("secret tok-1", "/retry", "/forget", "/forget confirm"):
        await collect(engine, web(message))
    assert await texts_of(store, owner) == []
    await collect(engine, telegram("guest tok-2"))
    code = await create_link_code(store, account.id, NOW)
    await collect(engine, telegram(f"/link {code}"))
    linked = await collect(engine, telegram("/link confirm move"))
    assert linked.done is not None and linked.done.text.startswith("Linked:")

    after = await collect(engine, web("after tok-3"))

    assert after.done is not None
    assert after.done.text == "re:after tok-3 saw:[guest tok-2]"
    stored = await texts_of(store, owner)
    assert not [t for t in stored if "tok-1" in tokens_in(t)], stored
    assert [t for t in stored if t.startswith("re:")] == [
        "re:guest tok-2 saw:[]",
        "re:after tok-3 saw:[guest tok-2]",
    ]


async def test_a_conversation_started_after_forget_is_a_new_one(store: Store) -> None:
    """The same run on the store alone: forget, a guest conversation, a link, a window."""
    account = await store.create_account("Ann", "unused", NOW)
    key = ConversationKey(account_owner(account.id), "ada", "direct")
    guest = Identity("telegram", "101")
    guest_key = ConversationKey(guest_owner(guest), "ada", "direct")
    version = 0
    for text in ("forgotten 1", "forgotten 2", "forgotten 3"):
        version, _ = await store.append_turns(
            key, [NewTurn("user", text, "Ann", NOW)], version, NOW
        )
    assert len((await store.load_window(key, 10)).turns) == 3  # fills a window cache
    await store.forget_owner(key.owner)
    version = 0
    for text in ("kept 1", "kept 2"):
        turn = NewTurn("user", text, "Ann", NOW)
        version, _ = await store.append_turns(guest_key, [turn], version, NOW)
    await store.link_identity(guest, "Ann", account.id, NOW)

    window = await store.load_window(key, 10)

    assert [t.text for t in window.turns] == ["kept 1", "kept 2"]


def run_link_racing_a_message(delay: int) -> tuple[list[str], list[str], Sent]:
    """Ann confirms a ``/link CODE`` (moving her history) in private and, ``delay`` loop
    turns later, writes in a group; returns what her guest identity and her account hold
    afterwards."""

    async def scenario() -> tuple[list[str], list[str], Sent]:
        async with MemoryStore() as store:
            engine = engine_for(store)
            account = await store.create_account("Ann", "unused", NOW)
            code = await create_link_code(store, account.id, NOW)
            asked = Incoming("telegram", "101", "Ann", "101", True, f"/link {code}")
            await collect(engine, asked)
            link = Incoming("telegram", "101", "Ann", "101", True, "/link confirm move")
            said = Incoming("telegram", "101", "Ann", "-500", False, "in the group tok-1")

            async def later() -> Sent:
                for _ in range(delay):
                    await asyncio.sleep(0)
                return await collect(engine, said)

            linked, _ = await asyncio.gather(collect(engine, link), later())
            guest = await texts_of(store, guest_owner(link.identity))
            mine = await texts_of(store, account_owner(account.id))
            return guest, mine, linked

    return asyncio.run(scenario())


@settings(max_examples=8)
@given(delay=st.integers(min_value=0, max_value=6))
def test_a_message_racing_its_own_link_is_kept_with_the_account(delay: int) -> None:
    guest, mine, linked = run_link_racing_a_message(delay)
    assert linked.done is not None and linked.done.text.startswith("Linked:")
    assert guest == [], f"left behind with the guest after the link: {guest}"
    assert mine == ["in the group tok-1", "re:in the group tok-1 saw:[]"]


async def test_an_older_file_goes_on_counting_past_its_conversations(tmp_path: Path) -> None:
    """Opening a file made before conversation ids were counted: new conversations get
    ids above every existing one."""
    path = tmp_path / "old.db"
    key = ConversationKey(guest_owner(Identity("telegram", "101")), "ada", "direct")
    async with SqliteStore(path, migrations=MIGRATIONS[:2]):
        pass
    async with aiosqlite.connect(path) as db:  # what an older PersonaBridge wrote
        await db.execute(
            "INSERT INTO conversations (id, owner, persona_id, scope, archived, version,"
            " started_at) VALUES (7, ?, 'ada', 'direct', 1, 3, 0)",
            (key.owner,),
        )
        await db.commit()
    async with SqliteStore(path) as new:
        version = (await new.load_window(key, 1)).version
        await new.append_turns(key, [NewTurn("user", "new", "Ann", NOW)], version, NOW)
    async with aiosqlite.connect(path) as db:
        rows = list(await db.execute_fetchall("SELECT id, archived FROM conversations"))
    assert sorted(rows) == [(7, 1), (8, 0)]


async def test_a_forget_asked_before_a_link_deletes_nothing_after_it(store: Store) -> None:
    """A guest asks to /forget (and is told what that deletes: its own history), then
    links. A '/forget confirm' now speaks for the account: it must not wipe the account's
    history on every platform, which the request never showed."""
    engine = engine_for(store)
    account = await store.create_account("Ann", "unused", NOW)
    owner = account_owner(account.id)
    web = Incoming(
        "web", account.id, "Ann", account.id, True, "on the web tok-1", account_id=account.id
    )

    def telegram(text: str) -> Incoming:
        return Incoming("telegram", "101", "Ann", "101", True, text)

    await collect(engine, web)
    asked = await collect(engine, telegram("/forget"))
    assert asked.done is not None and "/forget confirm" in asked.done.text
    code = await create_link_code(store, account.id, NOW)
    await collect(engine, telegram(f"/link {code}"))
    await collect(engine, telegram("/link confirm move"))

    confirmed = await collect(engine, telegram("/forget confirm"))

    assert confirmed.done is not None
    assert confirmed.done.text.startswith("There is no pending /forget"), confirmed.done.text
    assert "on the web tok-1" in await texts_of(store, owner)
    again = await collect(engine, telegram("/forget"))  # asked again, it goes ahead
    assert again.done is not None and "of your account" in again.done.text
    done = await collect(engine, telegram("/forget confirm"))
    assert done.done is not None and done.done.text.startswith("Done:")
    assert await texts_of(store, owner) == []
