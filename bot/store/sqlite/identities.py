"""Platform identities in SQLite: who speaks for whom, and linking (see "Linking" in
:mod:`bot.store.base`).

Functions of a connection, run on the store's worker thread (see
:mod:`bot.store.sqlite.writer`).
"""

from __future__ import annotations

import sqlite3  # used only inside functions run on aiosqlite's worker thread

from bot.errors import StoreError
from bot.messages import Identity, OwnerId, account_owner, guest_owner
from bot.store.base import LinkedIdentity
from bot.store.sqlite.owners import preferences

_IDENTITY = """
    SELECT platform, user_id, display_name, account_id, linked_at FROM identities
    WHERE platform = ? AND user_id = ?"""


def get_identity(conn: sqlite3.Connection, identity: Identity) -> LinkedIdentity | None:
    row = conn.execute(_IDENTITY, (identity.platform, identity.user_id)).fetchone()
    return LinkedIdentity(*row) if row else None


def resolve_identity(
    conn: sqlite3.Connection, identity: Identity
) -> tuple[LinkedIdentity | None, dict[str, str]]:
    """The identity's link and the preferences of the owner it speaks for, in one trip."""
    link = get_identity(conn, identity)
    owner = account_owner(link.account_id) if link else guest_owner(identity)
    return link, preferences(conn, owner)


def list_identities(conn: sqlite3.Connection, account_id: str) -> list[LinkedIdentity]:
    rows = conn.execute(
        "SELECT platform, user_id, display_name, account_id, linked_at FROM identities"
        " WHERE account_id = ? ORDER BY linked_at, rowid",
        (account_id,),
    )
    return [LinkedIdentity(*row) for row in rows]


def unlink_identity(conn: sqlite3.Connection, identity: Identity) -> None:
    conn.execute(
        "DELETE FROM identities WHERE platform = ? AND user_id = ?",
        (identity.platform, identity.user_id),
    )


def link_identity(
    conn: sqlite3.Connection,
    identity: Identity,
    display_name: str,
    account_id: str,
    now: float,
    move_guest_data: bool,
) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise StoreError(f"no account with id {account_id!r}")
    conn.execute(
        "INSERT INTO identities (platform, user_id, display_name, account_id, linked_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, user_id) DO UPDATE"
        " SET display_name = excluded.display_name, account_id = excluded.account_id,"
        " linked_at = CASE WHEN account_id = excluded.account_id"
        " THEN linked_at ELSE excluded.linked_at END",
        (identity.platform, identity.user_id, display_name, account_id, now),
    )
    if move_guest_data:
        _move_guest_data(conn, guest_owner(identity), account_owner(account_id))


def _move_guest_data(conn: sqlite3.Connection, guest: OwnerId, owner: OwnerId) -> None:
    moving = conn.execute(
        "SELECT id, persona_id, scope, version FROM conversations WHERE owner = ? AND archived = 0",
        (guest,),
    ).fetchall()
    for conversation_id, persona_id, scope, version in moving:
        theirs = conn.execute(
            "SELECT id, last_seq FROM conversations"
            " WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0",
            (owner, persona_id, scope),
        ).fetchone()
        if theirs is not None and theirs[1] > 0:
            conn.execute("UPDATE conversations SET archived = 1 WHERE id = ?", (conversation_id,))
            continue
        if theirs is not None:  # started by a state save, no turns: archive it like a reset
            conn.execute(
                "UPDATE conversations SET archived = 1, version = version + 1 WHERE id = ?",
                (theirs[0],),
            )
        (floor,) = conn.execute(
            "SELECT coalesce(max(version), 0) FROM conversations"
            " WHERE owner = ? AND persona_id = ? AND scope = ?",
            (owner, persona_id, scope),
        ).fetchone()
        conn.execute(
            "UPDATE conversations SET version = ? WHERE id = ?",
            (max(version, floor) + 1, conversation_id),
        )
    conn.execute("UPDATE conversations SET owner = ? WHERE owner = ?", (owner, guest))
    # preferences stay where they are: the account's own (its persona) win
