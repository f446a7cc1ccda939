"""What the SQLite store keeps per owner: preferences, token usage, the epoch and
forgetting (see "Forgetting" in :mod:`bot.store.base`).

Functions of a connection, run on the store's worker thread (see
:mod:`bot.store.sqlite.writer`).
"""

from __future__ import annotations

import sqlite3  # used only inside functions run on aiosqlite's worker thread

from bot.errors import OwnerForgotten
from bot.messages import OwnerId
from bot.store.base import Usage

#: Writes of preferences and usage skip a deleted owner (nothing of it may come back).
_NOT_DELETED = "NOT EXISTS (SELECT 1 FROM owner_epochs WHERE owner = ? AND deleted = 1)"

_PREFERENCES = "SELECT name, value FROM preferences WHERE owner = ?"


def preferences(conn: sqlite3.Connection, owner: OwnerId) -> dict[str, str]:
    rows = conn.execute(_PREFERENCES, (owner,))
    return {str(name): str(value) for name, value in rows}


def set_preference(conn: sqlite3.Connection, owner: OwnerId, name: str, value: str | None) -> None:
    if value is None:
        conn.execute("DELETE FROM preferences WHERE owner = ? AND name = ?", (owner, name))
    else:
        conn.execute(
            f"INSERT INTO preferences (owner, name, value) SELECT ?, ?, ? WHERE {_NOT_DELETED}"
            " ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value",
            (owner, name, value, owner),
        )


def add_usage(
    conn: sqlite3.Connection, owner: OwnerId, prompt_tokens: int, completion_tokens: int
) -> None:
    # one statement adding in place: concurrent adds from other processes all count
    conn.execute(
        "INSERT INTO usage (owner, prompt_tokens, completion_tokens, replies)"
        f" SELECT ?, ?, ?, 1 WHERE {_NOT_DELETED} ON CONFLICT (owner) DO UPDATE"
        " SET prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
        " completion_tokens = completion_tokens + excluded.completion_tokens,"
        " replies = replies + 1",
        (owner, prompt_tokens, completion_tokens, owner),
    )


def usage(conn: sqlite3.Connection, owner: OwnerId) -> Usage:
    row = conn.execute(
        "SELECT prompt_tokens, completion_tokens, replies FROM usage WHERE owner = ?",
        (owner,),
    ).fetchone()
    return Usage(*row) if row else Usage()


def epoch(conn: sqlite3.Connection, owner: OwnerId) -> int | None:
    """The owner's epoch, or None when it is deleted."""
    row = conn.execute(
        "SELECT epoch, deleted FROM owner_epochs WHERE owner = ?", (owner,)
    ).fetchone()
    if row is None:
        return 0
    return None if row[1] else int(row[0])


def check_epoch(conn: sqlite3.Connection, owner: OwnerId, epoch: int | None) -> None:
    """Refuse (in the write's own transaction) a write for a deleted owner, or from an
    epoch that has passed."""
    row = conn.execute("SELECT epoch, deleted FROM owner_epochs WHERE owner = ?", (owner,))
    found = row.fetchone()
    current, deleted = (0, 0) if found is None else found
    if deleted or (epoch is not None and epoch != current):
        raise OwnerForgotten(f"owner {owner} was forgotten or deleted")


def forget_owner(conn: sqlite3.Connection, owner: OwnerId) -> None:
    conn.execute(
        "INSERT INTO owner_epochs (owner, epoch) VALUES (?, 1)"
        " ON CONFLICT (owner) DO UPDATE SET epoch = epoch + 1",
        (owner,),
    )
    conn.execute("DELETE FROM conversations WHERE owner = ?", (owner,))  # turns cascade
    conn.execute("DELETE FROM preferences WHERE owner = ?", (owner,))
    conn.execute("DELETE FROM usage WHERE owner = ?", (owner,))


def mark_deleted(conn: sqlite3.Connection, owner: OwnerId) -> None:
    """Mark the owner deleted for good (a tombstone: every later write is refused)."""
    conn.execute(
        "INSERT INTO owner_epochs (owner, deleted) VALUES (?, 1)"
        " ON CONFLICT (owner) DO UPDATE SET deleted = 1",
        (owner,),
    )
