"""Conversations and their turns in SQLite: windows, appends, state, leases, resets.

A message reads only the recent window of its conversation: one row of
``conversations`` (its version, ``last_seq``) and a range of the ``turns`` primary key
below ``last_seq``, or none of it when the window of that very version is still in the
store's :class:`~bot.store.sqlite.recent.RecentTurns`. Versions are checked inside the
write transaction, so appends of several processes sharing the file never interleave;
an append takes or frees the conversation's lease in the same statement that bumps
the version (see "Leases" in :mod:`bot.store.base`).

Functions of a connection, run on the store's worker thread (see
:mod:`bot.store.sqlite.writer`).
"""

from __future__ import annotations

import json
import sqlite3  # used only inside functions run on aiosqlite's worker thread
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import ConversationBusy, VersionConflict
from bot.messages import (
    ConversationKey,
    NewTurn,
    OwnerId,
    Turn,
    attachments_from_json,
    attachments_json,
)
from bot.store.base import ConversationRecord, ConversationWindow, Lease, lease_blocks
from bot.store.sqlite.owner_cache import OwnerCache
from bot.store.sqlite.owners import check_epoch
from bot.store.sqlite.owners import epoch as owner_epoch
from bot.store.sqlite.recent import RecentTurns

# Takes the lease (:take set), or frees it when :release holds it; refuses (no row) when
# another holder's lease has not expired at :now.
_BUMP_FOR_APPEND = """
    UPDATE conversations
    SET version = version + 1, last_seq = last_seq + :count,
        started_at = CASE WHEN last_seq = 0 THEN :now ELSE started_at END,
        lease_holder = CASE WHEN :take IS NOT NULL THEN :take
            WHEN lease_holder = :release THEN NULL ELSE lease_holder END,
        lease_until = CASE WHEN :take IS NOT NULL THEN :until
            WHEN lease_holder = :release THEN NULL ELSE lease_until END
    WHERE owner = :owner AND persona_id = :persona AND scope = :scope AND archived = 0
        AND version = :expected
        AND (:take IS NULL OR lease_holder IS NULL OR lease_holder = :take OR lease_until <= :now)
    RETURNING id, version, last_seq"""

_LEASE = """
    SELECT version, lease_holder, lease_until FROM conversations
    WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0"""

_RELEASE = """
    UPDATE conversations SET lease_holder = NULL, lease_until = NULL
    WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0 AND lease_holder = ?"""

_SAVE_STATE = """
    UPDATE conversations
    SET version = version + 1, backend_state = coalesce(?, backend_state),
        summary = coalesce(?, summary)
    WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0 AND version = ?
    RETURNING id, version"""

_CURRENT = """
    SELECT id, version, last_seq, backend_state, summary FROM conversations
    WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0"""

# Seqs are consecutive, so the window is a range of the primary key. It is bounded above
# too, so that it matches the version read even when another process appends meanwhile.
_WINDOW = """
    SELECT seq, role, text, author, created_at, reply_to, attachments FROM turns
    WHERE conversation_id = ? AND seq > ? AND seq <= ? ORDER BY seq"""

_INSERT_TURN = """
    INSERT INTO turns
        (conversation_id, seq, role, text, author, created_at, reply_to, attachments)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""


def turn_of(row: Sequence[Any]) -> Turn:
    """A turn from ``seq, role, text, author, created_at, reply_to, attachments``."""
    seq, role, text, author, created_at, reply_to, files = row
    return Turn(seq, role, text, author, created_at, reply_to, attachments_from_json(files))


def _key(key: ConversationKey) -> tuple[str, str, str]:
    return key.owner, key.persona_id, key.scope


def _newest(conn: sqlite3.Connection, key: ConversationKey) -> tuple[bool, int]:
    """Whether the key has a current conversation, and the version appends expect."""
    row = conn.execute(
        "SELECT archived, version FROM conversations"
        " WHERE owner = ? AND persona_id = ? AND scope = ?"
        " ORDER BY archived, version DESC LIMIT 1",
        _key(key),
    ).fetchone()
    return (False, 0) if row is None else (not row[0], row[1])


def _start(conn: sqlite3.Connection, key: ConversationKey, expected: int, now: float) -> None:
    """Start the key's next conversation if ``expected`` is still its version."""
    current, version = _newest(conn, key)
    if current or version != expected:
        raise VersionConflict(f"conversation {key} is at version {version}, not {expected}")
    (conversation_id,) = conn.execute(
        "UPDATE conversation_ids SET last = last + 1 RETURNING last"
    ).fetchone()
    conn.execute(
        "INSERT INTO conversations (id, owner, persona_id, scope, version, started_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (conversation_id, *_key(key), version, now),
    )


def load_window(
    conn: sqlite3.Connection, recent: RecentTurns, key: ConversationKey, max_turns: int
) -> ConversationWindow:
    row = conn.execute(_CURRENT, _key(key)).fetchone()
    if row is None:
        return ConversationWindow(_newest(conn, key)[1])
    conversation_id, version, last_seq, state, summary = row
    turns = recent.get(key, conversation_id, version, max_turns)
    if turns is None:
        bounds = (conversation_id, last_seq - max(max_turns, 0), last_seq)
        turns = tuple(turn_of(turn) for turn in conn.execute(_WINDOW, bounds))
        recent.put(key, conversation_id, version, turns, max_turns)
    backend_state = json.loads(state) if state != "{}" else {}
    return ConversationWindow(version, turns, backend_state, summary)


def epoch_and_window(
    conn: sqlite3.Connection,
    recent: RecentTurns,
    owners: OwnerCache,
    key: ConversationKey,
    max_turns: int,
) -> tuple[int | None, ConversationWindow]:
    """The owner's epoch, then the window, in one snapshot (one operation)."""
    return owner_epoch(conn, owners, key.owner), load_window(conn, recent, key, max_turns)


@dataclass(frozen=True, slots=True)
class LeaseChange:
    take: Lease | None = None
    release: str | None = None


def append(
    conn: sqlite3.Connection,
    recent: RecentTurns,
    owners: OwnerCache,
    key: ConversationKey,
    turns: tuple[NewTurn, ...],
    expected: int,
    now: float,
    epoch: int | None = None,
    lease: LeaseChange = LeaseChange(),
) -> tuple[int, tuple[Turn, ...]]:
    check_epoch(conn, owners, key.owner, epoch)
    owner, persona, scope = _key(key)
    take = lease.take
    bump = {
        "count": len(turns), "now": now, "owner": owner, "persona": persona, "scope": scope,
        "expected": expected, "take": take.holder if take else None,
        "until": take.until if take else None, "release": lease.release,
    }  # fmt: skip
    row = conn.execute(_BUMP_FOR_APPEND, bump).fetchone()
    started = row is None
    if started:
        held = conn.execute(_LEASE, _key(key)).fetchone()
        if held is not None and held[0] == expected and lease_blocks(held[1], held[2], take, now):
            raise ConversationBusy(f"conversation {key} is being answered", until=held[2])
        _start(conn, key, expected, now)
        row = conn.execute(_BUMP_FOR_APPEND, bump).fetchone()
    conversation_id, version, last_seq = row
    first = last_seq - len(turns) + 1
    stored = tuple(
        Turn(
            seq,
            turn.role,
            turn.text,
            turn.author,
            turn.created_at,
            turn.reply_to,
            tuple(item.stored() for item in turn.attachments) if turn.attachments else (),
        )
        for seq, turn in enumerate(turns, start=first)
    )
    for turn in stored:
        files = attachments_json(turn.attachments) or None
        conn.execute(
            _INSERT_TURN,
            (
                conversation_id, turn.seq, turn.role, turn.text, turn.author,
                turn.created_at, turn.reply_to, files,
            ),
        )  # fmt: skip
    recent.advance(key, conversation_id, version, stored, started=started)
    return version, stored


def read_and_append(
    conn: sqlite3.Connection,
    recent: RecentTurns,
    owners: OwnerCache,
    key: ConversationKey,
    max_turns: int,
    turns: tuple[NewTurn, ...],
    now: float,
    lease: LeaseChange,
) -> tuple[int | None, ConversationWindow, int, tuple[Turn, ...]]:
    """The epoch and the window, then the append at that version: one operation, so
    nothing comes between them (and the read is served by the recent-turns cache)."""
    epoch, window = epoch_and_window(conn, recent, owners, key, max_turns)
    if epoch is None:
        return None, window, window.version, ()
    version, stored = append(conn, recent, owners, key, turns, window.version, now, epoch, lease)
    return epoch, window, version, stored


def save_state(
    conn: sqlite3.Connection,
    recent: RecentTurns,
    owners: OwnerCache,
    key: ConversationKey,
    expected: int,
    state: str | None,
    summary: str | None,
    epoch: int | None = None,
) -> int:
    check_epoch(conn, owners, key.owner, epoch)
    save = (state, summary, *_key(key), expected)
    row = conn.execute(_SAVE_STATE, save).fetchone()
    started = row is None
    if started:
        # a conversation started here has no turns yet; its first append dates it
        _start(conn, key, expected, 0.0)
        row = conn.execute(_SAVE_STATE, save).fetchone()
    conversation_id, version = row
    recent.advance(key, conversation_id, version, (), started=started)
    return int(version)


def release_lease(conn: sqlite3.Connection, key: ConversationKey, holder: str) -> None:
    conn.execute(_RELEASE, (*_key(key), holder))


def reset(conn: sqlite3.Connection, key: ConversationKey) -> None:
    """Archive the key's current conversation (a no-op when there is none)."""
    conn.execute(
        "UPDATE conversations SET archived = 1, version = version + 1"
        " WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0",
        (key.owner, key.persona_id, key.scope),
    )


def export(conn: sqlite3.Connection, owner: OwnerId) -> list[ConversationRecord]:
    """Every conversation of the owner, current and archived, with all its turns."""
    rows = conn.execute(
        "SELECT c.id, c.persona_id, c.scope, c.archived, c.started_at,"
        " t.seq, t.role, t.text, t.author, t.created_at, t.reply_to, t.attachments"
        " FROM conversations AS c LEFT JOIN turns AS t ON t.conversation_id = c.id"
        " WHERE c.owner = ? ORDER BY c.id, t.seq",
        (owner,),
    ).fetchall()
    records: list[ConversationRecord] = []
    turns: list[Turn] = []
    for index, row in enumerate(rows):
        if row[5] is not None:
            turns.append(turn_of(row[5:]))
        if index + 1 == len(rows) or rows[index + 1][0] != row[0]:
            record = ConversationRecord(row[1], row[2], bool(row[3]), row[4], tuple(turns))
            records.append(record)
            turns = []
    return records
