"""Recorded platform events and the inbox in SQLite (see the ``Store`` protocol).

``events`` holds one row per event id until it expires: the conditional insert that
creates it is how exactly one of several workers sharing the file gets to answer a
redelivered Telegram update or a replayed Discord interaction. ``inbox`` holds the
events acknowledged but not answered yet, each held by the worker answering it until
``hold_until``; a worker that dies lets its hold lapse and another takes the entry.
These functions run on the store's worker thread, inside its write transaction; the
tables are made by :data:`~bot.store.sqlite.schema.EVENT_TABLES`.
"""

from __future__ import annotations

import sqlite3  # used only inside functions run on aiosqlite's worker thread

from bot.store.base import InboxEntry

# A row comes back only when the id was new or its record had expired.
_CLAIM = """
    INSERT INTO events (source, event_id, expires_at) VALUES (:source, :event, :expires)
    ON CONFLICT (source, event_id) DO UPDATE SET expires_at = excluded.expires_at
    WHERE events.expires_at <= :now
    RETURNING 1"""

_ENQUEUE = """
    INSERT OR REPLACE INTO inbox (source, event_id, payload, received_at, hold_until)
    VALUES (?, ?, ?, ?, ?)"""

_LAPSED = """
    SELECT event_id, payload, received_at FROM inbox
    WHERE source = ? AND hold_until <= ? ORDER BY received_at LIMIT ?"""

FINISH_INBOX = "DELETE FROM inbox WHERE source = ? AND event_id = ?"


def claim_event(
    conn: sqlite3.Connection,
    source: str,
    event_id: str,
    now: float,
    expires_at: float,
    payload: str | None,
    hold_until: float,
) -> bool:
    claim = {"source": source, "event": event_id, "expires": expires_at, "now": now}
    if conn.execute(_CLAIM, claim).fetchone() is None:
        return False
    if payload is not None:
        conn.execute(_ENQUEUE, (source, event_id, payload, now, hold_until))
    return True


def take_inbox(
    conn: sqlite3.Connection, source: str, now: float, hold_until: float, limit: int
) -> list[InboxEntry]:
    rows = conn.execute(_LAPSED, (source, now, limit)).fetchall()
    for event_id, _, _ in rows:
        conn.execute(
            "UPDATE inbox SET hold_until = ? WHERE source = ? AND event_id = ?",
            (hold_until, source, event_id),
        )
    return [InboxEntry(source, str(e), str(p), float(r)) for e, p, r in rows]


def purge_events(conn: sqlite3.Connection, now: float) -> int:
    """Delete expired event records (and any inbox entry of theirs: past its expiry an
    event is too old to answer)."""
    purged = conn.execute("DELETE FROM events WHERE expires_at <= ?", (now,)).rowcount
    conn.execute(
        "DELETE FROM inbox WHERE NOT EXISTS (SELECT 1 FROM events AS e"
        " WHERE e.source = inbox.source AND e.event_id = inbox.event_id)"
    )
    return int(purged)
