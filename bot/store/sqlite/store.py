"""``SqliteStore``: the embedded default :class:`~bot.store.base.Store`, one file in WAL mode.

sqlite3 never runs on the event loop: aiosqlite owns the connection and runs it on its
one worker thread. A trip to that thread costs more than the statements of an operation,
so each operation is a small function run there whole, and the operations queued while
the thread is busy go together in its next trip, in one ``BEGIN IMMEDIATE ... COMMIT``
(group commit); one failing (a version conflict, say) does not fail the others (see
:func:`_run_batch`). Results are handed out after the commit, so nobody sees data that
did not last. Other processes may share the file: versions are checked inside the write
transaction, so appends never interleave.

A message reads only the recent window of its conversation: one row of
``conversations`` (its version, ``last_seq``) and a range of the ``turns`` primary key
below ``last_seq``, or none of it when the window of that very version is still in
:class:`_RecentTurns`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3  # used only inside functions run on aiosqlite's worker thread (_on_worker)
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast

import aiosqlite

from bot.errors import (
    ConversationBusy,
    OwnerForgotten,
    StoreError,
    StoreUnavailable,
    UsernameTaken,
    VersionConflict,
)
from bot.messages import (
    ConversationKey,
    Identity,
    NewTurn,
    OwnerId,
    Turn,
    account_owner,
    attachments_from_json,
    attachments_json,
    guest_owner,
)
from bot.store.base import (
    Account,
    ConversationRecord,
    ConversationWindow,
    InboxEntry,
    Lease,
    LinkedIdentity,
    Notice,
    PendingLink,
    Usage,
    WebSession,
    lease_blocks,
)
from bot.store.sqlite_events import (
    EVENT_TABLES,
    FINISH_INBOX,
    claim_event,
    purge_events,
    take_inbox,
)

P = ParamSpec("P")
T = TypeVar("T")

#: Most operations sent to the worker thread in one trip (and one transaction).
MAX_BATCH = 256

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
    # bot.pairing), and recorded platform events with the inbox (sqlite_events)
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
#: Writes of preferences and usage skip a deleted owner (nothing of it may come back).
_NOT_DELETED = "NOT EXISTS (SELECT 1 FROM owner_epochs WHERE owner = ? AND deleted = 1)"

#: What ``purge_expired`` runs: the reads refuse ``expires_at <= now``; these delete it.
_PURGE_CODES = "DELETE FROM link_codes WHERE expires_at <= ?"
_PURGE_SESSIONS = "DELETE FROM web_sessions WHERE expires_at <= ?"
_PURGE_PENDING_LINKS = "DELETE FROM pending_links WHERE expires_at <= ?"
_PURGE_NOTICES = "DELETE FROM notices WHERE expires_at <= ?"

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


def _turn(row: Sequence[Any]) -> Turn:
    """A turn from ``seq, role, text, author, created_at, reply_to, attachments``."""
    seq, role, text, author, created_at, reply_to, files = row
    return Turn(seq, role, text, author, created_at, reply_to, attachments_from_json(files))


class SqliteStore:
    """A :class:`~bot.store.base.Store` in one SQLite file (created, with its directory,
    when missing; upgraded to the current schema when older).

    ``window_cache`` is how many conversations keep their recent turns in memory.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        window_cache: int = 1024,
        migrations: Sequence[Sequence[str]] = MIGRATIONS,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._migrations = migrations
        self._recent = _RecentTurns(window_cache)
        self._db: aiosqlite.Connection | None = None
        self._pending: list[_Job] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> Self:
        if self._db is not None:
            return self
        try:
            await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(
                self._path, isolation_level=None, timeout=self._busy_timeout
            )
            await self._prepare_patiently()
        except BaseException as exc:
            db, self._db = self._db, None
            if db is not None:
                await db.close()
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreUnavailable(f"cannot open SQLite file {self._path}: {exc}") from exc
            raise
        self._recent.clear()
        return self

    async def _prepare_patiently(self) -> None:
        """Set the file up (WAL, migrations), waiting out another process doing the same.

        Switching a new file to WAL can fail at once with "database is locked" while
        another process (a second worker starting beside this one) migrates it: SQLite
        does not call the busy handler there. So the step is tried again, with pauses,
        for as long as the busy timeout allows.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.02
        while True:
            try:
                await _on_worker(self._connection(), _prepare, self._busy_timeout, self._migrations)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def __aexit__(self, *exc_info: object) -> None:
        while self._drainer is not None:  # finish what is queued
            await asyncio.shield(self._drainer)
        db, self._db = self._db, None
        if db is None:
            return
        try:
            await _on_worker(db, _fetch, "PRAGMA optimize", ())
        except sqlite3.Error:
            pass  # a hint for the query planner; closing matters more
        finally:
            await db.close()

    # -- the way to the worker thread -----------------------------------------------------

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("the SQLite store is not open (use `async with store:`)")
        return self._db

    async def _submit(self, writes: bool, run: Callable[[sqlite3.Connection], T]) -> T:
        """Queue one operation for the next trip and wait for its outcome."""
        self._connection()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(run, writes, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Send the queued operations to the worker thread, a batch per trip, until no
        more are queued."""
        batch: list[_Job] = []
        try:
            while self._pending:
                await asyncio.sleep(0)  # callers woken by the last batch queue their next
                taken = self._pending[:MAX_BATCH]
                del self._pending[: len(taken)]
                batch = [job for job in taken if not job.future.done()]  # skip the cancelled
                if not batch:
                    continue
                try:
                    db = self._connection()
                    outcomes = await _on_worker(db, _run_batch, batch, self._recent)
                except Exception as exc:  # the transaction as a whole failed
                    outcomes = [(False, _job_error(exc, whole_batch=True)) for _ in batch]
                for job, (ok, value) in zip(batch, outcomes, strict=True):
                    if job.future.done():
                        continue
                    if ok:
                        job.future.set_result(value)
                    else:
                        job.future.set_exception(_job_error(value))
        except BaseException:  # cancelled (the loop is closing): nobody waits forever
            for job in [*batch, *self._pending]:
                job.future.cancel()
            self._pending.clear()
            raise
        finally:
            self._drainer = None

    async def _select(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run one reading statement and return its rows."""
        return await self._submit(False, lambda conn: _fetch(conn, sql, parameters))

    async def _change(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run one writing statement and return its rows."""
        return await self._submit(True, lambda conn: _fetch(conn, sql, parameters))

    async def _write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(connection, ...)`` as one all-or-nothing write."""
        return await self._submit(True, lambda conn: fn(conn, *args, **kwargs))

    async def ping(self) -> None:
        await self._select("SELECT 1")

    async def probe_write(self) -> None:
        # rewrites the one row of an existing table with its own value: a real write
        # and commit (a read-only file or a full disk fails it), no schema of its own
        await self._change("UPDATE conversation_ids SET last = last")

    # -- accounts ---------------------------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: float) -> Account:
        account = Account(secrets.token_hex(8), username, password_hash, now)
        await self._change(
            "INSERT INTO accounts (id, username, username_lower, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (account.id, username, username.casefold(), password_hash, now),
        )
        return account

    async def get_account(self, account_id: str) -> Account | None:
        rows = await self._select(
            "SELECT id, username, password_hash, created_at FROM accounts WHERE id = ?",
            (account_id,),
        )
        return Account(*rows[0]) if rows else None

    async def find_account(self, username: str) -> Account | None:
        rows = await self._select(
            "SELECT id, username, password_hash, created_at FROM accounts WHERE username_lower = ?",
            (username.casefold(),),
        )
        return Account(*rows[0]) if rows else None

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._change(
            "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
        )

    async def delete_account(self, account_id: str) -> None:
        await self._write(_delete_account, account_id)

    # -- identities -------------------------------------------------------------------

    async def get_identity(self, identity: Identity) -> LinkedIdentity | None:
        rows = await self._select(
            "SELECT platform, user_id, display_name, account_id, linked_at FROM identities"
            " WHERE platform = ? AND user_id = ?",
            (identity.platform, identity.user_id),
        )
        return LinkedIdentity(*rows[0]) if rows else None

    async def resolve_identity(
        self, identity: Identity
    ) -> tuple[LinkedIdentity | None, dict[str, str]]:
        return await self._submit(False, lambda conn: _resolve_identity(conn, identity))

    async def link_identity(
        self,
        identity: Identity,
        display_name: str,
        account_id: str,
        now: float,
        *,
        move_guest_data: bool = True,
    ) -> None:
        await self._write(_link_identity, identity, display_name, account_id, now, move_guest_data)

    async def unlink_identity(self, identity: Identity) -> None:
        await self._change(
            "DELETE FROM identities WHERE platform = ? AND user_id = ?",
            (identity.platform, identity.user_id),
        )

    async def list_identities(self, account_id: str) -> list[LinkedIdentity]:
        rows = await self._select(
            "SELECT platform, user_id, display_name, account_id, linked_at FROM identities"
            " WHERE account_id = ? ORDER BY linked_at, rowid",
            (account_id,),
        )
        return [LinkedIdentity(*row) for row in rows]

    # -- link codes and web sessions --------------------------------------------------

    async def put_link_code(
        self, code_hash: str, account_id: str, expires_at: float, *, max_live: int | None = None
    ) -> None:
        await self._write(_put_link_code, code_hash, account_id, expires_at, max_live)

    async def peek_link_code(self, code_hash: str, now: float) -> str | None:
        rows = await self._select(
            "SELECT account_id FROM link_codes WHERE code_hash = ? AND expires_at > ?",
            (code_hash, now),
        )
        return str(rows[0][0]) if rows else None

    async def take_link_code(self, code_hash: str, now: float) -> str | None:
        # deleting is what makes a code single-use, across processes too
        rows = await self._change(
            "DELETE FROM link_codes WHERE code_hash = ? RETURNING account_id, expires_at",
            (code_hash,),
        )
        return str(rows[0][0]) if rows and rows[0][1] > now else None

    async def put_pending_link(self, pending: PendingLink) -> None:
        identity = pending.identity
        await self._change(
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

    async def take_pending_link(self, identity: Identity, now: float) -> PendingLink | None:
        # deleting is what gives it to one caller, across processes too
        rows = await self._change(
            "DELETE FROM pending_links WHERE platform = ? AND user_id = ?"
            " RETURNING account_id, code_hash, expires_at",
            (identity.platform, identity.user_id),
        )
        if not rows or rows[0][2] <= now:
            return None
        account_id, code_hash, expires_at = rows[0]
        return PendingLink(identity, str(account_id), str(code_hash), float(expires_at))

    async def add_notice(self, account_id: str, text: str, now: float, expires_at: float) -> None:
        await self._change(
            "INSERT INTO notices (account_id, created_at, text, expires_at) VALUES (?, ?, ?, ?)",
            (account_id, now, text, expires_at),
        )

    async def list_notices(self, account_id: str, now: float, limit: int) -> list[Notice]:
        rows = await self._select(
            "SELECT created_at, text FROM notices WHERE account_id = ? AND expires_at > ?"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (account_id, now, limit),
        )
        return [Notice(float(created_at), str(text)) for created_at, text in rows]

    async def put_web_session(self, token_hash: str, account_id: str, expires_at: float) -> None:
        await self._change(
            "INSERT INTO web_sessions (token_hash, account_id, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (token_hash) DO UPDATE"
            " SET account_id = excluded.account_id, expires_at = excluded.expires_at",
            (token_hash, account_id, expires_at),
        )

    async def get_web_session(self, token_hash: str, now: float) -> WebSession | None:
        rows = await self._select(
            "SELECT account_id, expires_at FROM web_sessions"
            " WHERE token_hash = ? AND expires_at > ?",
            (token_hash, now),
        )
        return WebSession(*rows[0]) if rows else None

    async def delete_web_session(self, token_hash: str) -> None:
        await self._change("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))

    async def delete_web_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        rows = await self._change(
            "DELETE FROM web_sessions WHERE account_id = ? AND token_hash IS NOT ?"
            " RETURNING token_hash",
            (account_id, keep),
        )
        return len(rows)

    async def purge_expired(self, now: float) -> int:
        return await self._write(_purge_expired, now)

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, owner: OwnerId) -> dict[str, str]:
        rows = await self._select("SELECT name, value FROM preferences WHERE owner = ?", (owner,))
        return {str(name): str(value) for name, value in rows}

    async def set_preference(self, owner: OwnerId, name: str, value: str | None) -> None:
        if value is None:
            await self._change(
                "DELETE FROM preferences WHERE owner = ? AND name = ?", (owner, name)
            )
        else:
            await self._change(
                f"INSERT INTO preferences (owner, name, value) SELECT ?, ?, ? WHERE {_NOT_DELETED}"
                " ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value",
                (owner, name, value, owner),
            )

    # -- conversations ----------------------------------------------------------------

    async def load_window(self, key: ConversationKey, max_turns: int) -> ConversationWindow:
        recent = self._recent
        return await self._submit(False, lambda conn: _load_window(conn, recent, key, max_turns))

    async def owner_epoch(self, owner: OwnerId) -> int | None:
        rows = await self._select(
            "SELECT epoch, deleted FROM owner_epochs WHERE owner = ?", (owner,)
        )
        if not rows:
            return 0
        return None if rows[0][1] else int(rows[0][0])

    async def append_turns(
        self,
        key: ConversationKey,
        turns: Sequence[NewTurn],
        expected_version: int,
        now: float,
        *,
        take_lease: Lease | None = None,
        release_lease: str | None = None,
        epoch: int | None = None,
    ) -> tuple[int, tuple[Turn, ...]]:
        lease = _LeaseChange(take_lease, release_lease)
        return await self._write(
            _append, self._recent, key, tuple(turns), expected_version, now, epoch, lease
        )

    async def release_lease(self, key: ConversationKey, holder: str) -> None:
        await self._change(_RELEASE, (*_key(key), holder))

    # -- platform events and the inbox ------------------------------------------------

    async def claim_event(
        self,
        source: str,
        event_id: str,
        now: float,
        expires_at: float,
        *,
        payload: str | None = None,
        hold_until: float = 0.0,
    ) -> bool:
        return await self._write(
            claim_event, source, event_id, now, expires_at, payload, hold_until
        )

    async def take_inbox(
        self, source: str, now: float, hold_until: float, limit: int
    ) -> list[InboxEntry]:
        return await self._write(take_inbox, source, now, hold_until, limit)

    async def finish_inbox(self, source: str, event_id: str) -> None:
        await self._change(FINISH_INBOX, (source, event_id))

    async def save_conversation_state(
        self,
        key: ConversationKey,
        expected_version: int,
        *,
        backend_state: Mapping[str, Any] | None = None,
        summary: str | None = None,
        epoch: int | None = None,
    ) -> int:
        state = None if backend_state is None else json.dumps(dict(backend_state))
        return await self._write(
            _save_state, self._recent, key, expected_version, state, summary, epoch
        )

    async def reset_conversation(self, key: ConversationKey) -> None:
        await self._change(
            "UPDATE conversations SET archived = 1, version = version + 1"
            " WHERE owner = ? AND persona_id = ? AND scope = ? AND archived = 0",
            (key.owner, key.persona_id, key.scope),
        )

    # -- token usage ------------------------------------------------------------------

    async def add_usage(self, owner: OwnerId, prompt_tokens: int, completion_tokens: int) -> None:
        # one statement adding in place: concurrent adds from other processes all count
        await self._change(
            "INSERT INTO usage (owner, prompt_tokens, completion_tokens, replies)"
            f" SELECT ?, ?, ?, 1 WHERE {_NOT_DELETED} ON CONFLICT (owner) DO UPDATE"
            " SET prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
            " completion_tokens = completion_tokens + excluded.completion_tokens,"
            " replies = replies + 1",
            (owner, prompt_tokens, completion_tokens, owner),
        )

    async def get_usage(self, owner: OwnerId) -> Usage:
        rows = await self._select(
            "SELECT prompt_tokens, completion_tokens, replies FROM usage WHERE owner = ?",
            (owner,),
        )
        return Usage(*rows[0]) if rows else Usage()

    async def export_owner(self, owner: OwnerId) -> list[ConversationRecord]:
        rows = await self._select(
            "SELECT c.id, c.persona_id, c.scope, c.archived, c.started_at,"
            " t.seq, t.role, t.text, t.author, t.created_at, t.reply_to, t.attachments"
            " FROM conversations AS c LEFT JOIN turns AS t ON t.conversation_id = c.id"
            " WHERE c.owner = ? ORDER BY c.id, t.seq",
            (owner,),
        )
        records: list[ConversationRecord] = []
        turns: list[Turn] = []
        for index, row in enumerate(rows):
            if row[5] is not None:
                turns.append(_turn(row[5:]))
            if index + 1 == len(rows) or rows[index + 1][0] != row[0]:
                record = ConversationRecord(row[1], row[2], bool(row[3]), row[4], tuple(turns))
                records.append(record)
                turns = []
        return records

    async def forget_owner(self, owner: OwnerId) -> None:
        await self._write(_forget_owner, owner)


async def _on_worker(
    db: aiosqlite.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn(connection, ...)`` on aiosqlite's worker thread, in one trip.

    aiosqlite's public API costs a trip per statement (and per BEGIN and COMMIT); a
    whole batch run as one function there is several times faster. aiosqlite has no
    public way to do that: this is the one place that uses its private ``_execute``
    (there since its first release; the version is pinned below 1 in pyproject.toml)."""
    result = await db._execute(fn, db._conn, *args, **kwargs)  # type: ignore[no-untyped-call]
    return cast(T, result)


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    writes: bool
    future: asyncio.Future[Any]


def _translate(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError) and "accounts.username_lower" in str(exc):
        return UsernameTaken("the username is taken (compared case-insensitively)")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"SQLite refused the change: {exc}")
    return StoreUnavailable(f"SQLite failed: {exc}")


def _job_error(error: BaseException, *, whole_batch: bool = False) -> BaseException:
    """The exception a caller sees: a fresh one per caller, sqlite3's translated."""
    if isinstance(error, sqlite3.Error):
        translated = _translate(error)
    elif whole_batch:
        translated = StoreUnavailable(f"the SQLite store failed: {error!r}")
    else:
        return error  # raised on purpose by the operation: VersionConflict, StoreError
    translated.__cause__ = error
    return translated


@dataclass(slots=True)
class _Recent:
    conversation_id: int
    version: int
    turns: tuple[Turn, ...]
    complete: bool  # whether turns start at the conversation's first

    def holds(self, conversation_id: int, version: int) -> bool:
        return self.conversation_id == conversation_id and self.version == version


class _RecentTurns:
    """The newest turns of recently used conversations, so that a window costs one row
    lookup instead of one per turn. An entry holds for one conversation at one version
    (a conversation id is never given twice, even after /forget: ``conversation_ids``),
    and every load reads the version from the file first, so an entry never serves turns
    that changed meanwhile (another process appended, a reset, a link). Used on the
    worker thread only; cleared whenever a transaction fails."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keep = 0  # the most turns a window has asked for
        self._entries: OrderedDict[ConversationKey, _Recent] = OrderedDict()

    def get(
        self, key: ConversationKey, conversation_id: int, version: int, max_turns: int
    ) -> tuple[Turn, ...] | None:
        entry = self._entries.get(key)
        if entry is None or not entry.holds(conversation_id, version):
            return None
        if len(entry.turns) < max_turns and not entry.complete:
            return None
        self._entries.move_to_end(key)
        return entry.turns[-max_turns:] if max_turns > 0 else ()

    def put(
        self,
        key: ConversationKey,
        conversation_id: int,
        version: int,
        turns: tuple[Turn, ...],
        max_turns: int,
    ) -> None:
        self._keep = max(self._keep, max_turns)
        complete = not turns or turns[0].seq == 1
        self._store(key, _Recent(conversation_id, version, turns, complete))

    def advance(
        self,
        key: ConversationKey,
        conversation_id: int,
        version: int,
        added: tuple[Turn, ...],
        *,
        started: bool = False,
    ) -> None:
        """Follow a change this process made: version - 1 became ``version``."""
        entry = _Recent(conversation_id, version - 1, (), True) if started else None
        entry = entry or self._entries.get(key)
        if entry is None or not entry.holds(conversation_id, version - 1):
            self._entries.pop(key, None)
            return
        turns = entry.turns + added
        complete = entry.complete and len(turns) <= self._keep
        kept = turns[max(len(turns) - self._keep, 0) :]
        self._store(key, _Recent(conversation_id, version, kept, complete))

    def clear(self) -> None:
        self._entries.clear()

    def _store(self, key: ConversationKey, entry: _Recent) -> None:
        if self._capacity <= 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


# -- what runs on the worker thread -----------------------------------------------------


def _prepare(
    conn: sqlite3.Connection, busy_timeout: float, migrations: Sequence[Sequence[str]]
) -> None:
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


def _run_batch(
    conn: sqlite3.Connection, batch: Sequence[_Job], recent: _RecentTurns
) -> list[tuple[bool, Any]]:
    """Run the operations in order, in one transaction; returns ``(True, result)`` or
    ``(False, exception)`` for each.

    An operation that fails having changed nothing fails alone: our operations check
    before they write, and a failed statement undoes itself. One that fails after
    changing something is a broken invariant or a broken disk: that raises, and the
    whole batch rolls back and fails, so nothing half-done is ever committed. (Savepoints
    would let even that one fail alone, for two more statements per write: too dear for
    what should never happen.)"""
    outcomes: list[tuple[bool, Any]] = []
    # a batch of reads gets a transaction too: one snapshot for each operation
    conn.execute("BEGIN IMMEDIATE" if any(job.writes for job in batch) else "BEGIN")
    try:
        for job in batch:
            changes = conn.total_changes
            try:
                outcomes.append((True, job.run(conn)))
            except Exception as exc:
                if conn.total_changes != changes:
                    raise
                outcomes.append((False, exc))
        conn.execute("COMMIT")
    except BaseException:
        recent.clear()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _fetch(conn: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, parameters).fetchall()


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


def _load_window(
    conn: sqlite3.Connection, recent: _RecentTurns, key: ConversationKey, max_turns: int
) -> ConversationWindow:
    row = conn.execute(_CURRENT, _key(key)).fetchone()
    if row is None:
        return ConversationWindow(_newest(conn, key)[1])
    conversation_id, version, last_seq, state, summary = row
    turns = recent.get(key, conversation_id, version, max_turns)
    if turns is None:
        bounds = (conversation_id, last_seq - max(max_turns, 0), last_seq)
        turns = tuple(_turn(turn) for turn in conn.execute(_WINDOW, bounds))
        recent.put(key, conversation_id, version, turns, max_turns)
    backend_state = json.loads(state) if state != "{}" else {}
    return ConversationWindow(version, turns, backend_state, summary)


@dataclass(frozen=True, slots=True)
class _LeaseChange:
    take: Lease | None = None
    release: str | None = None


def _check_epoch(conn: sqlite3.Connection, owner: OwnerId, epoch: int | None) -> None:
    """Refuse (in the write's own transaction) a write for a deleted owner, or from an
    epoch that has passed."""
    row = conn.execute("SELECT epoch, deleted FROM owner_epochs WHERE owner = ?", (owner,))
    found = row.fetchone()
    current, deleted = (0, 0) if found is None else found
    if deleted or (epoch is not None and epoch != current):
        raise OwnerForgotten(f"owner {owner} was forgotten or deleted")


def _append(
    conn: sqlite3.Connection,
    recent: _RecentTurns,
    key: ConversationKey,
    turns: tuple[NewTurn, ...],
    expected: int,
    now: float,
    epoch: int | None = None,
    lease: _LeaseChange = _LeaseChange(),
) -> tuple[int, tuple[Turn, ...]]:
    _check_epoch(conn, key.owner, epoch)
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
            tuple(item.stored() for item in turn.attachments),
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


def _save_state(
    conn: sqlite3.Connection,
    recent: _RecentTurns,
    key: ConversationKey,
    expected: int,
    state: str | None,
    summary: str | None,
    epoch: int | None = None,
) -> int:
    _check_epoch(conn, key.owner, epoch)
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


def _resolve_identity(
    conn: sqlite3.Connection, identity: Identity
) -> tuple[LinkedIdentity | None, dict[str, str]]:
    row = conn.execute(
        "SELECT platform, user_id, display_name, account_id, linked_at FROM identities"
        " WHERE platform = ? AND user_id = ?",
        (identity.platform, identity.user_id),
    ).fetchone()
    link = LinkedIdentity(*row) if row else None
    owner = account_owner(link.account_id) if link else guest_owner(identity)
    prefs = conn.execute("SELECT name, value FROM preferences WHERE owner = ?", (owner,))
    return link, {str(name): str(value) for name, value in prefs}


def _link_identity(
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


def _put_link_code(
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


def _purge_expired(conn: sqlite3.Connection, now: float) -> int:
    codes = conn.execute(_PURGE_CODES, (now,)).rowcount
    sessions = conn.execute(_PURGE_SESSIONS, (now,)).rowcount
    pending = conn.execute(_PURGE_PENDING_LINKS, (now,)).rowcount
    notices = conn.execute(_PURGE_NOTICES, (now,)).rowcount
    return codes + sessions + pending + notices + purge_events(conn, now)


def _delete_account(conn: sqlite3.Connection, account_id: str) -> None:
    owner = account_owner(account_id)
    conn.execute(
        "INSERT INTO owner_epochs (owner, deleted) VALUES (?, 1)"
        " ON CONFLICT (owner) DO UPDATE SET deleted = 1",
        (owner,),
    )
    _forget_owner(conn, owner)
    # identities, link codes and web sessions go by ON DELETE CASCADE
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


def _forget_owner(conn: sqlite3.Connection, owner: OwnerId) -> None:
    conn.execute(
        "INSERT INTO owner_epochs (owner, epoch) VALUES (?, 1)"
        " ON CONFLICT (owner) DO UPDATE SET epoch = epoch + 1",
        (owner,),
    )
    conn.execute("DELETE FROM conversations WHERE owner = ?", (owner,))  # turns cascade
    conn.execute("DELETE FROM preferences WHERE owner = ?", (owner,))
    conn.execute("DELETE FROM usage WHERE owner = ?", (owner,))
