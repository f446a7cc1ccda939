"""SqliteStore.purge_expired: rows really leave the file, by index, in old files too."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import aiosqlite
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import UsernameTaken
from bot.store.memory import MemoryStore
from bot.store.sqlite import MIGRATIONS, SqliteStore
from bot.store.sqlite.accounts import _PURGE_CODES, _PURGE_SESSIONS

#: The schema before the expiry indexes (migration 4).
BEFORE_EXPIRY_INDEXES = MIGRATIONS[:3]


def count_rows(path: Path) -> dict[str, int]:
    """Rows per table, read with a connection of its own (run in a thread)."""
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("link_codes", "web_sessions", "accounts")
        }


async def test_purged_rows_leave_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as store:
        account = await store.create_account("alice", "h", 1.0)
        for n in range(200):
            await store.put_web_session(f"old-session-{n}", account.id, 500.0 + n)
            await store.put_link_code(f"old-code-{n}", account.id, 500.0 - n)
        for n in range(7):
            await store.put_web_session(f"live-session-{n}", account.id, 1000.0)
            await store.put_link_code(f"live-code-{n}", account.id, 1000.0)
        before = await asyncio.to_thread(count_rows, path)
        assert await store.purge_expired(700.0) == 400
    after = await asyncio.to_thread(count_rows, path)
    assert before == {"link_codes": 207, "web_sessions": 207, "accounts": 1}
    assert after == {"link_codes": 7, "web_sessions": 7, "accounts": 1}


async def test_purge_deletes_by_the_expiry_indexes(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db"):
        pass
    async with aiosqlite.connect(tmp_path / "pb.db") as db:
        for sql, table in ((_PURGE_CODES, "link_codes"), (_PURGE_SESSIONS, "web_sessions")):
            rows = await db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", (1.0,))
            plan = " | ".join(row[3] for row in rows)
            assert f"SEARCH {table} USING INDEX {table}_expiry" in plan
            assert "SCAN" not in plan


async def test_a_file_from_before_the_expiry_indexes_is_migrated_and_purged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path, migrations=BEFORE_EXPIRY_INDEXES) as old:
        account = await old.create_account("alice", "h", 1.0)
        await old.put_web_session("expired", account.id, 10.0)
        await old.put_link_code("expired", account.id, 10.0)
        await old.put_web_session("live", account.id, 1000.0)
    async with SqliteStore(path) as new:
        assert await new.purge_expired(100.0) == 2
        assert await new.get_web_session("live", 100.0) is not None
    async with aiosqlite.connect(path) as db:
        (version,) = next(iter(await db.execute_fetchall("PRAGMA user_version")))
        indexes = await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_expiry'"
        )
    assert version == len(MIGRATIONS)
    assert {"link_codes_expiry", "web_sessions_expiry"} <= {name for (name,) in indexes}


async def test_a_purge_in_a_batch_with_a_failing_write_still_commits(tmp_path: Path) -> None:
    """Operations queued together share a transaction (group commit): a write refused in
    the same batch must not undo the purge, nor the purge the other writes."""
    async with SqliteStore(tmp_path / "pb.db") as store:
        account = await store.create_account("alice", "h", 1.0)
        await store.put_web_session("expired", account.id, 10.0)
        purged, refused, _ = await asyncio.gather(
            store.purge_expired(100.0),
            store.create_account("ALICE", "h", 1.0),
            store.put_web_session("live", account.id, 1000.0),
            return_exceptions=True,
        )
        assert purged == 1
        assert isinstance(refused, UsernameTaken)
        assert await store.get_web_session("expired", 0.0) is None
        assert await store.get_web_session("live", 100.0) is not None


expiries = st.lists(st.integers(min_value=0, max_value=20).map(float), max_size=12)


@settings(max_examples=25)
@given(codes=expiries, sessions=expiries, now=st.integers(min_value=0, max_value=20))
def test_purge_agrees_with_the_reference(
    codes: list[float], sessions: list[float], now: int
) -> None:
    """Whatever the expiries, SQLite purges what MemoryStore purges: the same count, and
    the same codes and sessions are left (at ``now`` exactly is expired)."""

    async def survivors(store: SqliteStore | MemoryStore) -> tuple[int, list[str]]:
        async with store:
            account = await store.create_account("alice", "h", 1.0)
            for n, expires_at in enumerate(codes):
                await store.put_link_code(f"code-{n}", account.id, expires_at)
            for n, expires_at in enumerate(sessions):
                await store.put_web_session(f"session-{n}", account.id, expires_at)
            purged = await store.purge_expired(float(now))
            left = [f"session-{n}" for n in range(len(sessions))]
            left = [t for t in left if await store.get_web_session(t, -1.0) is not None]
            for n in range(len(codes)):
                if await store.take_link_code(f"code-{n}", -1.0) is not None:
                    left.append(f"code-{n}")
            return purged, left

    with tempfile.TemporaryDirectory() as folder:
        got = asyncio.run(survivors(SqliteStore(Path(folder) / "pb.db")))
    expected = asyncio.run(survivors(MemoryStore()))
    assert got == expected
    assert expected[0] == sum(e <= now for e in [*codes, *sessions])
