"""``SqliteStore``: the embedded default :class:`~bot.store.base.Store`, one file in WAL mode.

sqlite3 never runs on the event loop: aiosqlite owns the connection and runs it on its
one worker thread, where each operation runs whole, batched with the others queued
meanwhile in one transaction (group commit; one failing does not fail the others).
Results are handed out after the commit, so nobody sees data that did not last. Other
processes may share the file: versions are checked inside the write transaction, so
appends never interleave.

A message reads only the recent window of its conversation: one row of
``conversations`` (its version, ``last_seq``) and a range of the ``turns`` primary key
below ``last_seq``, or none of it when the window of that very version is still in
memory.

The parts:

``schema``          the migrations (``PRAGMA user_version`` counts them) and the set-up
                    of a connection
``writer``          :class:`~bot.store.sqlite.writer.BatchWriter`: the connection, the
                    queue, the batches and their transactions, sqlite3's errors
                    translated
``recent``          the recent turns of recently used conversations (what the store
                    remembers lives beside it, is handed to the operations that use it,
                    runs on the worker thread with them and is dropped on a rollback)
``store``           :class:`SqliteStore`: one operation per method, handed to the writer
``accounts``        accounts, web sessions, link codes, pending links, notices, purging
``identities``      identities and linking (guest data moved to the account)
``owners``          preferences, token usage, epochs, forgetting
``conversations``   windows, appends, state, leases, resets, export
``events``          recorded platform events and the inbox
"""

from __future__ import annotations

from bot.store.sqlite.schema import MIGRATIONS
from bot.store.sqlite.store import SqliteStore

__all__ = ["MIGRATIONS", "SqliteStore"]
