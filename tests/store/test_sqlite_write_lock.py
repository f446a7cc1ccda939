"""The SQLite writer's wait for the write lock another process holds (another web worker
on the same file): tried again in short steps before SQLite's own busy handler, whose
sleeps grow to tens of milliseconds, takes over; the busy timeout is kept as set.

Two plain sqlite3 connections to one file stand for the two processes (the lock is the
file's, whoever holds it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.sqlite.writer import LOCK_POLL, begin_immediate

BUSY_MS = 1000


@pytest.fixture
def connections(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    path = tmp_path / "shared.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE t (x INTEGER)")
    mine = sqlite3.connect(path, isolation_level=None, timeout=BUSY_MS / 1000)
    try:
        yield mine, other
    finally:
        mine.close()
        other.close()


def busy_timeout(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("PRAGMA busy_timeout").fetchone()
    return int(value)


def test_a_lock_held_elsewhere_is_tried_for_again_soon(
    connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    """The other process lets go as this one tries a second time, which gets the lock.
    (With SQLite's busy handler alone, its tries happen inside one statement: the
    other would never be told to let go, and this would end in "database is locked".)"""
    mine, other = connections
    other.execute("BEGIN IMMEDIATE")
    tries: list[str] = []

    def traced(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            tries.append(statement)
            if len(tries) == 2:
                other.execute("COMMIT")

    mine.set_trace_callback(traced)
    begin_immediate(mine, BUSY_MS)
    mine.set_trace_callback(None)
    assert mine.in_transaction
    assert len(tries) == 2
    mine.execute("INSERT INTO t VALUES (1)")
    mine.execute("COMMIT")
    assert busy_timeout(mine) == BUSY_MS


def test_a_lock_held_past_the_short_tries_is_waited_for_by_sqlite_then_refused(
    connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    mine, other = connections
    other.execute("BEGIN IMMEDIATE")
    tries: list[str] = []
    mine.set_trace_callback(lambda s: tries.append(s) if s == "BEGIN IMMEDIATE" else None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(mine, 50)
    assert len(tries) == len(LOCK_POLL) + 1  # the short tries, then SQLite's own wait
    assert not mine.in_transaction
    assert busy_timeout(mine) == 50
    other.execute("COMMIT")


def test_other_errors_are_not_waited_on(
    connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    mine, _ = connections
    mine.execute("BEGIN")  # a transaction already open: BEGIN IMMEDIATE is an error
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(mine, BUSY_MS)
    assert busy_timeout(mine) == BUSY_MS
    mine.execute("ROLLBACK")
