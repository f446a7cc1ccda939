"""Accounts, web sessions, link codes, pending links and notices in SQLite, and the
purge of what has expired.

Everything with an expiry is refused by every read once ``expires_at <= now``;
:func:`purge_expired` deletes it later (an index on each expiry keeps that cheap).
Functions of a connection, run on the store's worker thread (see
:mod:`bot.store.sqlite.writer`).
"""

from __future__ import annotations

import secrets
import sqlite3  # used only inside functions run on aiosqlite's worker thread

from bot.errors import StoreError
from bot.messages import Identity, account_owner
from bot.store.base import Account, Notice, PendingLink, WebSession
from bot.store.sqlite.events import purge_events
from bot.store.sqlite.owners import forget_owner, mark_deleted

#: What ``purge_expired`` runs: the reads refuse ``expires_at <= now``; these delete it.
_PURGE_CODES = "DELETE FROM link_codes WHERE expires_at <= ?"
_PURGE_SESSIONS = "DELETE FROM web_sessions WHERE expires_at <= ?"
_PURGE_PENDING_LINKS = "DELETE FROM pending_links WHERE expires_at <= ?"
_PURGE_NOTICES = "DELETE FROM notices WHERE expires_at <= ?"

_ACCOUNT = "SELECT id, username, password_hash, created_at FROM accounts"

# -- accounts -------------------------------------------------------------------------


def create_account(
    conn: sqlite3.Connection, username: str, password_hash: str, now: float
) -> Account:
    account = Account(secrets.token_hex(8), username, password_hash, now)
    conn.execute(
        "INSERT INTO accounts (id, username, username_lower, password_hash, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (account.id, username, username.casefold(), password_hash, now),
    )
    return account


def get_account(conn: sqlite3.Connection, account_id: str) -> Account | None:
    row = conn.execute(f"{_ACCOUNT} WHERE id = ?", (account_id,)).fetchone()
    return Account(*row) if row else None


def find_account(conn: sqlite3.Connection, username: str) -> Account | None:
    row = conn.execute(f"{_ACCOUNT} WHERE username_lower = ?", (username.casefold(),)).fetchone()
    return Account(*row) if row else None


def set_password_hash(conn: sqlite3.Connection, account_id: str, password_hash: str) -> None:
    conn.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id))


def delete_account(conn: sqlite3.Connection, account_id: str) -> None:
    owner = account_owner(account_id)
    mark_deleted(conn, owner)
    forget_owner(conn, owner)
    # identities, link codes and web sessions go by ON DELETE CASCADE
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


# -- web sessions ---------------------------------------------------------------------


def put_web_session(
    conn: sqlite3.Connection, token_hash: str, account_id: str, expires_at: float
) -> None:
    conn.execute(
        "INSERT INTO web_sessions (token_hash, account_id, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (token_hash) DO UPDATE"
        " SET account_id = excluded.account_id, expires_at = excluded.expires_at",
        (token_hash, account_id, expires_at),
    )


def get_web_session(conn: sqlite3.Connection, token_hash: str, now: float) -> WebSession | None:
    row = conn.execute(
        "SELECT account_id, expires_at FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
        (token_hash, now),
    ).fetchone()
    return WebSession(*row) if row else None


def delete_web_session(conn: sqlite3.Connection, token_hash: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))


def delete_web_sessions(conn: sqlite3.Connection, account_id: str, keep: str | None) -> int:
    rows = conn.execute(
        "DELETE FROM web_sessions WHERE account_id = ? AND token_hash IS NOT ?"
        " RETURNING token_hash",
        (account_id, keep),
    ).fetchall()
    return len(rows)


# -- link codes, pending links and notices --------------------------------------------


def put_link_code(
    conn: sqlite3.Connection,
    code_hash: str,
    account_id: str,
    expires_at: float,
    max_live: int | None,
) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise StoreError(f"no account with id {account_id!r}")
    conn.execute("DELETE FROM link_codes WHERE code_hash = ?", (code_hash,))
    if max_live is not None:
        # the codes expiring first make room (expired ones among them)
        conn.execute(
            "DELETE FROM link_codes WHERE code_hash IN (SELECT code_hash FROM link_codes"
            " WHERE account_id = ? ORDER BY expires_at DESC LIMIT -1 OFFSET ?)",
            (account_id, max(0, max_live - 1)),
        )
    conn.execute(
        "INSERT INTO link_codes (code_hash, account_id, expires_at) VALUES (?, ?, ?)",
        (code_hash, account_id, expires_at),
    )


def peek_link_code(conn: sqlite3.Connection, code_hash: str, now: float) -> str | None:
    row = conn.execute(
        "SELECT account_id FROM link_codes WHERE code_hash = ? AND expires_at > ?",
        (code_hash, now),
    ).fetchone()
    return str(row[0]) if row else None


def take_link_code(conn: sqlite3.Connection, code_hash: str, now: float) -> str | None:
    # deleting is what makes a code single-use, across processes too
    rows = conn.execute(
        "DELETE FROM link_codes WHERE code_hash = ? RETURNING account_id, expires_at",
        (code_hash,),
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][1] > now else None


def put_pending_link(conn: sqlite3.Connection, pending: PendingLink) -> None:
    identity = pending.identity
    conn.execute(
        "INSERT INTO pending_links (platform, user_id, account_id, code_hash, expires_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, user_id) DO UPDATE"
        " SET account_id = excluded.account_id, code_hash = excluded.code_hash,"
        " expires_at = excluded.expires_at",
        (
            identity.platform,
            identity.user_id,
            pending.account_id,
            pending.code_hash,
            pending.expires_at,
        ),
    )


def take_pending_link(
    conn: sqlite3.Connection, identity: Identity, now: float
) -> PendingLink | None:
    # deleting is what gives it to one caller, across processes too
    rows = conn.execute(
        "DELETE FROM pending_links WHERE platform = ? AND user_id = ?"
        " RETURNING account_id, code_hash, expires_at",
        (identity.platform, identity.user_id),
    ).fetchall()
    if not rows or rows[0][2] <= now:
        return None
    account_id, code_hash, expires_at = rows[0]
    return PendingLink(identity, str(account_id), str(code_hash), float(expires_at))


def add_notice(
    conn: sqlite3.Connection, account_id: str, text: str, now: float, expires_at: float
) -> None:
    conn.execute(
        "INSERT INTO notices (account_id, created_at, text, expires_at) VALUES (?, ?, ?, ?)",
        (account_id, now, text, expires_at),
    )


def list_notices(conn: sqlite3.Connection, account_id: str, now: float, limit: int) -> list[Notice]:
    rows = conn.execute(
        "SELECT created_at, text FROM notices WHERE account_id = ? AND expires_at > ?"
        " ORDER BY created_at DESC, id DESC LIMIT ?",
        (account_id, now, limit),
    )
    return [Notice(float(created_at), str(text)) for created_at, text in rows]


def purge_expired(conn: sqlite3.Connection, now: float) -> int:
    codes = conn.execute(_PURGE_CODES, (now,)).rowcount
    sessions = conn.execute(_PURGE_SESSIONS, (now,)).rowcount
    pending = conn.execute(_PURGE_PENDING_LINKS, (now,)).rowcount
    notices = conn.execute(_PURGE_NOTICES, (now,)).rowcount
    return codes + sessions + pending + notices + purge_events(conn, now)
