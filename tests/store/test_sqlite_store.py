"""What only SqliteStore has: a file, a schema that migrates, WAL, a window cache, batches."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest

from bot.errors import StoreError, StoreUnavailable, VersionConflict
from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, account_owner, guest_owner
from bot.store.memory import MemoryStore
from bot.store.sqlite import MIGRATIONS, SqliteStore
from bot.store.sqlite.conversations import _CURRENT, _WINDOW
from bot.store.sqlite.writer import CHECKPOINT_EVERY, MAX_BATCH, WRITER_CHECKPOINT_PAGES

KEY = ConversationKey(guest_owner(Identity("telegram", "1")), "ada", "direct")


def said(*texts: str) -> list[NewTurn]:
    return [NewTurn("user", text, "Alice", 1.0) for text in texts]


async def pragma(path: Path, name: str) -> object:
    async with aiosqlite.connect(path) as db:
        rows = list(await db.execute_fetchall(f"PRAGMA {name}"))
    return rows[0][0]


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "pb.db"  # the directories are made
    async with SqliteStore(path) as store:
        account = await store.create_account("alice", "h", 1.0)
        version, _ = await store.append_turns(KEY, said("kept"), 0, 1.0)
        await store.save_conversation_state(KEY, version, backend_state={"id": 7})
    async with SqliteStore(str(path)) as store:
        assert await store.find_account("ALICE") == account
        window = await store.load_window(KEY, 10)
        assert [t.text for t in window.turns] == ["kept"]
        assert window.backend_state == {"id": 7}


async def test_a_store_can_be_opened_again_after_closing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "pb.db")
    async with store:
        await store.append_turns(KEY, said("one"), 0, 1.0)
    with pytest.raises(StoreUnavailable):
        await store.load_window(KEY, 10)
    async with store:
        assert len((await store.load_window(KEY, 10)).turns) == 1


async def test_wal_mode_and_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path):
        assert await pragma(path, "journal_mode") == "wal"
        assert await pragma(path, "user_version") == len(MIGRATIONS)


async def test_opening_migrates_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path, migrations=MIGRATIONS) as old:
        await old.append_turns(KEY, said("from before"), 0, 1.0)
    later = (
        *MIGRATIONS,
        ("CREATE TABLE added_later (x TEXT)", "INSERT INTO added_later VALUES ('y')"),
    )
    async with SqliteStore(path, migrations=later) as new:
        assert [t.text for t in (await new.load_window(KEY, 5)).turns] == ["from before"]
    assert await pragma(path, "user_version") == len(MIGRATIONS) + 1
    async with aiosqlite.connect(path) as db:
        assert list(await db.execute_fetchall("SELECT x FROM added_later")) == [("y",)]


async def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path):
        pass
    broken = (*MIGRATIONS, ("CREATE TABLE half (x TEXT)", "THIS IS NOT SQL"))
    with pytest.raises(StoreUnavailable):
        async with SqliteStore(path, migrations=broken):
            pass
    assert await pragma(path, "user_version") == len(MIGRATIONS)
    async with aiosqlite.connect(path) as db:
        tables = await db.execute_fetchall("SELECT name FROM sqlite_master WHERE name = 'half'")
        assert list(tables) == []


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreUnavailable, match="newer"):
        async with SqliteStore(path):
            pass


async def test_unopenable_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(StoreUnavailable):
        async with SqliteStore(tmp_path / "a-directory"):
            pass


@pytest.mark.parametrize(
    ("sql", "parameters", "expected"),
    [
        pytest.param(_CURRENT, ("o", "p", "s"), "SEARCH conversations USING INDEX", id="current"),
        pytest.param(_WINDOW, (1, 80, 100), "SEARCH turns USING PRIMARY KEY", id="turns"),
    ],
)
async def test_window_reads_are_index_lookups(
    tmp_path: Path, sql: str, parameters: tuple[object, ...], expected: str
) -> None:
    async with SqliteStore(tmp_path / "pb.db"):
        pass
    async with aiosqlite.connect(tmp_path / "pb.db") as db:
        plan = " | ".join(
            row[3] for row in await db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", parameters)
        )
    assert expected in plan
    assert "SCAN" not in plan and "TEMP B-TREE" not in plan  # no full scan, no sort


async def test_window_of_a_long_conversation(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db", window_cache=0) as store:
        version = 0
        for start in range(0, 3000, 500):
            batch = said(*(f"t{n}" for n in range(start, start + 500)))
            version, _ = await store.append_turns(KEY, batch, version, 1.0)
        window = await store.load_window(KEY, 40)
        assert [t.seq for t in window.turns] == list(range(2961, 3001))
        assert window.turns[-1].text == "t2999"


async def test_two_processes_sharing_a_file(tmp_path: Path) -> None:
    """Each store caches windows; a change by the other one is seen, never hidden."""
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as one, SqliteStore(path) as two:
        version, _ = await one.append_turns(KEY, said("one says"), 0, 1.0)
        assert [t.text for t in (await one.load_window(KEY, 10)).turns] == ["one says"]
        version, _ = await two.append_turns(KEY, said("two says"), version, 1.0)
        window = await one.load_window(KEY, 10)
        assert (window.version, [t.text for t in window.turns]) == (
            version,
            ["one says", "two says"],
        )
        with pytest.raises(VersionConflict):
            await one.append_turns(KEY, said("stale"), version - 1, 1.0)
        await two.reset_conversation(KEY)
        assert (await one.load_window(KEY, 10)).turns == ()


async def test_many_concurrent_operations_share_batches(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        keys = [ConversationKey(OwnerId(f"guest:web:{n}"), "ada", "direct") for n in range(300)]

        async def converse(key: ConversationKey) -> None:
            for n in range(3):
                window = await store.load_window(key, 40)
                version, _ = await store.append_turns(key, said(f"u{n}"), window.version, 1.0)
                await store.append_turns(key, said(f"a{n}"), version, 1.0)

        await asyncio.gather(*(converse(key) for key in keys))
        for key in keys[::50]:
            assert [t.seq for t in (await store.load_window(key, 40)).turns] == list(range(1, 7))


async def test_the_wal_is_checkpointed_beside_the_writer(tmp_path: Path) -> None:
    """The writer's connection checkpoints only as a backstop; every CHECKPOINT_EVERY
    writes a checkpoint runs on a connection of its own, and closing waits for it."""
    async with SqliteStore(tmp_path / "pb.db") as store:
        writer = store._db
        assert await writer.select("PRAGMA wal_autocheckpoint") == [(WRITER_CHECKPOINT_PAGES,)]
        keys = [ConversationKey(OwnerId(f"guest:web:{n}"), "ada", "direct") for n in range(50)]
        rounds = 2 * CHECKPOINT_EVERY // len(keys) + 1

        async def converse(key: ConversationKey) -> None:
            version = 0
            for n in range(rounds):
                version, _ = await store.append_turns(key, said(f"u{n}"), version, 1.0)

        await asyncio.gather(*(converse(key) for key in keys))
    assert writer.checkpoints >= 1
    async with SqliteStore(tmp_path / "pb.db") as store:
        for key in keys[::10]:
            assert len((await store.load_window(key, 1000)).turns) == rounds


async def test_the_next_batch_is_sent_while_the_last_still_runs(tmp_path: Path) -> None:
    """With more operations queued than one batch takes, the next batch waits in the
    thread's queue: the thread runs it as soon as the first commits, even while the
    loop is busy (here: blocked) and has not handed the first one's results out."""
    first_may_end, second_ran = threading.Event(), threading.Event()

    def blocks(conn: sqlite3.Connection) -> None:
        first_may_end.wait(10)

    def signals(conn: sqlite3.Connection) -> None:
        second_ran.set()

    def nothing(conn: sqlite3.Connection) -> None:
        pass

    async with SqliteStore(tmp_path / "pb.db") as store:
        writer = store._db
        ops = [blocks] + [nothing] * (MAX_BATCH - 1) + [signals] + [nothing] * (MAX_BATCH - 1)
        futures = [writer.write(op) for op in ops]
        for _ in range(20):  # the drainer sends both batches
            await asyncio.sleep(0)
        first_may_end.set()
        assert second_ran.wait(10)  # the loop blocked: the thread went on by itself
        await asyncio.gather(*futures)


async def test_a_failed_write_undoes_only_itself(tmp_path: Path) -> None:
    """Writes of one batch share a transaction; one failing must not take the others."""
    async with SqliteStore(tmp_path / "pb.db") as store:
        await store.create_account("taken", "h", 1.0)
        other = ConversationKey(OwnerId("guest:web:2"), "ada", "direct")
        results = await asyncio.gather(
            store.append_turns(KEY, said("fine"), 0, 1.0),
            store.create_account("TAKEN", "h", 1.0),
            store.append_turns(other, said("conflict"), 5, 1.0),
            store.link_identity(Identity("web", "x"), "X", "no-such-account", 1.0),
            store.append_turns(other, said("also fine"), 0, 1.0),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == [
            "tuple",
            "UsernameTaken",
            "VersionConflict",
            "StoreError",
            "tuple",
        ]
        assert isinstance(results[3], StoreError)
        assert [t.text for t in (await store.load_window(KEY, 5)).turns] == ["fine"]
        assert [t.text for t in (await store.load_window(other, 5)).turns] == ["also fine"]


async def test_closing_waits_for_queued_operations(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    store = SqliteStore(path)
    async with store:
        pending = asyncio.gather(
            *(store.set_preference(KEY.owner, f"p{n}", "v") for n in range(50))
        )
        await asyncio.sleep(0)  # they start, and queue their writes
    await pending
    async with SqliteStore(path) as again:
        assert len(await again.get_preferences(KEY.owner)) == 50


async def test_windows_agree_with_the_reference_under_random_operations(tmp_path: Path) -> None:
    """Random appends, resets, state saves and links, through two stores sharing one file
    (one caching windows, one not): every window equals MemoryStore's."""
    rng = random.Random(20240601)
    path = tmp_path / "pb.db"
    async with (
        SqliteStore(path) as cached,
        SqliteStore(path, window_cache=0) as uncached,
        MemoryStore() as reference,
    ):
        stores = (cached, uncached)
        account = await cached.create_account("alice", "h", 1.0)
        twin = await reference.create_account("alice", "h", 1.0)  # the same, by another id
        identities = [Identity("telegram", str(n)) for n in range(3)]
        owners = [guest_owner(i) for i in identities] + [account_owner(account.id)]
        keys = [ConversationKey(o, p, "direct") for o in owners for p in ("ada", "morrow")]

        def twin_of(key: ConversationKey) -> ConversationKey:
            if key.owner == account_owner(account.id):
                return ConversationKey(account_owner(twin.id), key.persona_id, key.scope)
            return key

        for step in range(600):
            key, via, roll = rng.choice(keys), rng.choice(stores), rng.random()
            if roll < 0.55:
                version = (await via.load_window(key, 1)).version
                texts = said(*(f"s{step}.{n}" for n in range(rng.randint(1, 3))))
                await via.append_turns(key, texts, version, float(step))
                await reference.append_turns(twin_of(key), texts, version, float(step))
            elif roll < 0.65:
                await via.reset_conversation(key)
                await reference.reset_conversation(twin_of(key))
            elif roll < 0.75:
                version = (await via.load_window(key, 1)).version
                state = {"step": step}
                await via.save_conversation_state(key, version, backend_state=state)
                await reference.save_conversation_state(twin_of(key), version, backend_state=state)
            elif roll < 0.78:
                identity = rng.choice(identities)
                await via.link_identity(identity, "A", account.id, float(step))
                await reference.link_identity(identity, "A", twin.id, float(step))
                if rng.random() < 0.5:
                    await via.unlink_identity(identity)
                    await reference.unlink_identity(identity)
            max_turns = rng.choice((1, 5, 40))
            expected = await reference.load_window(twin_of(key), max_turns)
            for store in stores:
                assert await store.load_window(key, max_turns) == expected, step
        for key in keys[::2]:
            exported = await reference.export_owner(twin_of(key).owner)
            assert await cached.export_owner(key.owner) == exported


async def test_a_file_from_before_attachments_migrates_and_keeps_its_turns(
    tmp_path: Path,
) -> None:
    from bot.messages import Attachment, AttachmentKind, ConversationKey, NewTurn, OwnerId

    path = tmp_path / "old.db"
    conversation = ConversationKey(OwnerId("guest:telegram:1"), "ada", "direct")
    async with SqliteStore(path, migrations=MIGRATIONS[:-1]):
        pass
    async with aiosqlite.connect(path) as db:  # a turn as the older version wrote it
        await db.execute(
            "INSERT INTO conversations (id, owner, persona_id, scope, version, last_seq,"
            " started_at) VALUES (1, 'guest:telegram:1', 'ada', 'direct', 1, 1, 1.0)"
        )
        await db.execute(
            "INSERT INTO turns (conversation_id, seq, role, text, author, created_at)"
            " VALUES (1, 1, 'user', 'hi', 'A', 1.0)"
        )
        await db.commit()
    voice = Attachment(AttachmentKind.AUDIO, "audio/ogg", 10, "v.ogg", "hello")
    async with SqliteStore(path) as new:
        window = await new.load_window(conversation, 10)
        assert [(t.text, t.attachments) for t in window.turns] == [("hi", ())]
        turn = NewTurn("user", "", "A", 2.0, attachments=(voice,))
        await new.append_turns(conversation, [turn], window.version, 2.0)
        assert (await new.load_window(conversation, 10)).turns[-1].attachments == (voice,)
    assert await pragma(path, "user_version") == len(MIGRATIONS)
