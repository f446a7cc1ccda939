"""``BatchWriter``: the SQLite store's one way to its connection, in shared transactions.

sqlite3 never runs on the event loop: aiosqlite owns the connection and runs it on its
one worker thread. A trip to that thread costs more than the statements of an operation,
so each operation is a small function run there whole (``fn(connection, ...)``), and the
operations queued while the thread is busy go together in its next trip, in one
``BEGIN IMMEDIATE ... COMMIT`` (group commit); one failing (a version conflict, say) does
not fail the others (see :func:`_run_batch`). Results are handed out after the commit,
so nobody sees data that did not last. Reads are batched the same way, in a ``BEGIN``
of their own when a batch has no write: one snapshot for each operation.
"""

from __future__ import annotations

import asyncio
import sqlite3  # used only inside functions run on aiosqlite's worker thread (_on_worker)
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiosqlite

from bot.errors import StoreError, StoreUnavailable, UsernameTaken

P = ParamSpec("P")
T = TypeVar("T")

#: Most operations sent to the worker thread in one trip (and one transaction).
MAX_BATCH = 256


class BatchWriter:
    """The connection to one SQLite file and the queue of operations waiting for it.

    ``prepare(connection)`` sets a new connection up (pragmas, migrations); it is tried
    again while another process holds the file (see :meth:`open`). ``on_rollback`` runs
    on the worker thread whenever a batch's transaction fails as a whole: what the store
    remembers of the file may then be wrong (the recent-turns cache). ``on_begin`` runs
    there when a batch's transaction begins.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        prepare: Callable[[sqlite3.Connection], None],
        on_rollback: Callable[[], None],
        on_begin: Callable[[], None] = lambda: None,
    ) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._busy_ms = int(busy_timeout * 1000)
        self._prepare = prepare
        self._on_rollback = on_rollback
        self._on_begin = on_begin
        self._db: aiosqlite.Connection | None = None
        self._pending: list[_Job] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self) -> None:
        """Open the file (creating it, and its directory, when missing) and prepare it."""
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
                await _on_worker(self._connection(), self._prepare)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def close(self) -> None:
        """Finish what is queued, then close the connection."""
        while self._drainer is not None:
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

    # -- operations -----------------------------------------------------------------------
    # (plain functions handing back the operation's future: no coroutine of their own)

    def read(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """Run ``fn(connection, ...)``, which only reads, in the next trip."""
        return self._submit(False, fn, args, kwargs)

    def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """Run ``fn(connection, ...)`` as one all-or-nothing write in the next trip."""
        return self._submit(True, fn, args, kwargs)

    def select(self, sql: str, parameters: Sequence[Any] = ()) -> asyncio.Future[list[Any]]:
        """Run one reading statement and return its rows."""
        return self._submit(False, _fetch, (sql, parameters), {})

    def change(self, sql: str, parameters: Sequence[Any] = ()) -> asyncio.Future[list[Any]]:
        """Run one writing statement and return its rows."""
        return self._submit(True, _fetch, (sql, parameters), {})

    # -- the way to the worker thread -----------------------------------------------------

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("the SQLite store is not open (use `async with store:`)")
        return self._db

    def _submit(
        self,
        writes: bool,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> asyncio.Future[T]:
        """Queue ``fn(connection, *args, **kwargs)`` for the next trip; its outcome
        comes in the future."""
        if self._db is None:
            self._connection()  # raises
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(fn, args, kwargs, writes, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return future

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
                    outcomes = await _on_worker(
                        db, _run_batch, batch, self._on_begin, self._on_rollback, self._busy_ms
                    )
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
    fn: Callable[..., Any]  # called as fn(connection, *args, **kwargs)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    writes: bool
    future: asyncio.Future[Any]


def _run_batch(
    conn: sqlite3.Connection,
    batch: Sequence[_Job],
    on_begin: Callable[[], None],
    on_rollback: Callable[[], None],
    busy_ms: int,
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
    if any(job.writes for job in batch):
        begin_immediate(conn, busy_ms)
    else:
        conn.execute("BEGIN")
    on_begin()
    try:
        for job in batch:
            changes = conn.total_changes
            try:
                outcomes.append((True, job.fn(conn, *job.args, **job.kwargs)))
            except Exception as exc:
                if conn.total_changes != changes:
                    raise
                outcomes.append((False, exc))
        conn.execute("COMMIT")
    except BaseException:
        on_rollback()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


#: Seconds between tries for the write lock another process holds, before SQLite's own
#: busy handler takes over (about 20 ms in all).
LOCK_POLL = (0.0001, 0.0002, 0.0004, 0.0008) + (0.001,) * 18


def begin_immediate(conn: sqlite3.Connection, busy_ms: int) -> None:
    """``BEGIN IMMEDIATE``, waiting in steps of at most a millisecond while another
    process (another web worker on the same file) holds the write lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms ... between tries: a
    worker that finds the lock taken for the 10 ms of another's batch waits about 18 ms
    (measured here: 11 ms with these tries), and everything it has queued (webhooks
    waiting to be acknowledged) waits with it. So the
    first tries are made here, the busy timeout off (``PRAGMA busy_timeout`` is a call
    into SQLite, no I/O); past :data:`LOCK_POLL`, SQLite's handler waits out the rest."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        for pause in LOCK_POLL:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(pause)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    conn.execute("BEGIN IMMEDIATE")


def _fetch(conn: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, parameters).fetchall()


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
