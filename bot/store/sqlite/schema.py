"""The SQLite store's schema: its migrations, and the set-up of a connection.

``PRAGMA user_version`` counts the migrations a file has had; :func:`prepare` applies
the ones it lacks, in order, each in one transaction, so that a file of any older
PersonaBridge is upgraded when it is opened (and one of a newer one is refused).
"""

from __future__ import annotations

import sqlite3  # used only inside functions run on aiosqlite's worker thread
from collections.abc import Sequence

from bot.errors import StoreUnavailable

#: Recorded platform events and the inbox (:mod:`bot.store.sqlite.events`): part of
#: migration 7.
EVENT_TABLES: tuple[str, ...] = (
    """CREATE TABLE events (
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (source, event_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX events_expires_at ON events (expires_at)",
    """CREATE TABLE inbox (
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        hold_until REAL NOT NULL,
        PRIMARY KEY (source, event_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX inbox_hold ON inbox (source, hold_until)",
)

#: The schema, one migration per entry, applied in order; ``PRAGMA user_version`` counts
#: the applied ones. Append new migrations; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            username_lower TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE identities (
            platform TEXT NOT NULL,
            user_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            linked_at REAL NOT NULL,
            PRIMARY KEY (platform, user_id)
        )""",
        "CREATE INDEX identities_account ON identities (account_id, linked_at)",
        """CREATE TABLE link_codes (
            code_hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX link_codes_account ON link_codes (account_id)",
        """CREATE TABLE web_sessions (
            token_hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX web_sessions_account ON web_sessions (account_id)",
        """CREATE TABLE preferences (
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (owner, name)
        ) WITHOUT ROWID""",
        # last_seq is the seq of the newest turn: the window is the range above
        # last_seq - max_turns on the turns primary key, whatever the history's length.
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            archived INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            backend_state TEXT NOT NULL DEFAULT '{}',
            summary TEXT NOT NULL DEFAULT '',
            started_at REAL NOT NULL
        )""",
        """CREATE UNIQUE INDEX conversations_current
            ON conversations (owner, persona_id, scope) WHERE archived = 0""",
        # version is left out so that appends do not rewrite this index
        "CREATE INDEX conversations_key ON conversations (owner, persona_id, scope, archived)",
        """CREATE TABLE turns (
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            text TEXT NOT NULL,
            author TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID""",
    ),
    # 2: token usage totals per owner (one row each, added to in place)
    (
        """CREATE TABLE usage (
            owner TEXT PRIMARY KEY,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            replies INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
    ),
    # 3: conversation ids are never used twice. SQLite gives a new row the largest id
    # plus one, so a conversation started after /forget could get a forgotten one's id,
    # and a window cached for that id and version would serve the forgotten turns.
    (
        "CREATE TABLE conversation_ids (last INTEGER NOT NULL)",
        "INSERT INTO conversation_ids (last) SELECT coalesce(max(id), 0) FROM conversations",
    ),
    # 4: expired link codes and sessions are purged by expiry (purge_expired): an index
    # each, so that a purge reads only what it deletes
    (
        "CREATE INDEX link_codes_expiry ON link_codes (expires_at)",
        "CREATE INDEX web_sessions_expiry ON web_sessions (expires_at)",
    ),
    # 5: two-step linking (a /link CODE waits for its identity's confirmation) and the
    # notices an account's owner is shown (an identity linked or unlinked)
    (
        """CREATE TABLE pending_links (
            platform TEXT NOT NULL,
            user_id TEXT NOT NULL,
            account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (platform, user_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX pending_links_account ON pending_links (account_id)",
        "CREATE INDEX pending_links_expiry ON pending_links (expires_at)",
        """CREATE TABLE notices (
            id INTEGER PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            text TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX notices_account ON notices (account_id, created_at)",
        "CREATE INDEX notices_expiry ON notices (expires_at)",
    ),
    # 6: owner epochs and tombstones (see bot.store.base, "Forgetting"): a row once an
    # owner is first forgotten or deleted, never removed
    (
        """CREATE TABLE owner_epochs (
            owner TEXT PRIMARY KEY,
            epoch INTEGER NOT NULL DEFAULT 0,
            deleted INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
    ),
    # 7: several workers on one conversation (bot.leases): the lease on the current
    # conversation, the user turn each reply answers (NULL in older rows: see
    # bot.pairing), and recorded platform events with the inbox (events)
    (
        "ALTER TABLE turns ADD COLUMN reply_to INTEGER",
        "ALTER TABLE conversations ADD COLUMN lease_holder TEXT",
        "ALTER TABLE conversations ADD COLUMN lease_until REAL",
        *EVENT_TABLES,
    ),
    # 8: what was sent with a message (metadata, transcripts, file text as JSON; never
    # the bytes); NULL for a turn without files
    ("ALTER TABLE turns ADD COLUMN attachments TEXT",),
)


def prepare(
    conn: sqlite3.Connection, busy_timeout: float, migrations: Sequence[Sequence[str]]
) -> None:
    """Set the connection up (WAL, foreign keys, busy timeout) and apply the migrations
    the file lacks, each in its own transaction (on the worker thread)."""
    conn.execute("PRAGMA journal_mode = WAL")
    # a power cut may lose the last commits (not a crash of the process), never corrupts
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    while True:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise StoreUnavailable(
                f"the SQLite file has schema version {version}, newer than this "
                f"PersonaBridge knows ({len(migrations)}): upgrade PersonaBridge"
            )
        if version == len(migrations):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have applied it since we looked
            if conn.execute("PRAGMA user_version").fetchone()[0] == version:
                for statement in migrations[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
