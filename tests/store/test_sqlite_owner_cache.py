"""SqliteStore's owner cache (links, preferences, epochs in memory): it saves the reads,
and never hides what another process (another connection to the file) committed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.errors import OwnerForgotten, StoreUnavailable
from bot.messages import ConversationKey, Identity, NewTurn, account_owner, guest_owner
from bot.store.sqlite import SqliteStore

ALICE = Identity("telegram", "1")


async def traced(store: SqliteStore) -> list[str]:
    """The statements the store's connection runs from now on."""
    statements: list[str] = []
    await store._db._connection().set_trace_callback(statements.append)
    return statements


async def test_a_second_resolve_reads_only_the_data_version(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        account = await store.create_account("alice", "hash", 1.0)
        await store.link_identity(ALICE, "Alice", account.id, 1.0)
        await store.set_preference(account_owner(account.id), "persona", "ada")
        first = await store.resolve_identity(ALICE)
        await store.owner_epoch(account_owner(account.id))
        statements = await traced(store)
        again = await store.resolve_identity(ALICE)
        epoch = await store.owner_epoch(account_owner(account.id))
        await store._db._connection().set_trace_callback(None)
    assert again == first and first[1] == {"persona": "ada"} and epoch == 0
    reads = [s for s in statements if s not in ("BEGIN", "COMMIT")]
    assert reads == ["PRAGMA data_version", "PRAGMA data_version"]  # one per batch


async def test_what_another_process_commits_is_seen_at_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as one, SqliteStore(path) as two:
        account = await two.create_account("alice", "hash", 1.0)
        owner = account_owner(account.id)
        assert (await one.resolve_identity(ALICE))[0] is None  # now cached as a guest
        await two.link_identity(ALICE, "Alice", account.id, 2.0)
        link, _ = await one.resolve_identity(ALICE)
        assert link is not None and link.account_id == account.id
        await two.set_preference(owner, "persona", "ada")
        assert (await one.resolve_identity(ALICE))[1] == {"persona": "ada"}
        assert await one.get_preferences(owner) == {"persona": "ada"}
        await two.unlink_identity(ALICE)
        assert await one.resolve_identity(ALICE) == (None, {})


async def test_a_forget_by_another_process_is_seen_and_refuses_old_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pb.db"
    key = ConversationKey(guest_owner(ALICE), "ada", "direct")
    turn = [NewTurn("user", "hello", "Alice", 1.0)]
    async with SqliteStore(path) as one, SqliteStore(path) as two:
        await one.set_preference(key.owner, "persona", "ada")
        assert await one.owner_epoch(key.owner) == 0  # cached
        assert (await one.resolve_identity(ALICE))[1] == {"persona": "ada"}
        await two.forget_owner(key.owner)
        assert await one.owner_epoch(key.owner) == 1
        assert await one.resolve_identity(ALICE) == (None, {})
        with pytest.raises(OwnerForgotten):
            await one.append_turns(key, turn, 0, 1.0, epoch=0)
        version, _ = await one.append_turns(key, turn, 0, 1.0, epoch=1)
        assert version == 1


async def test_own_writes_are_seen_at_once(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        account = await store.create_account("alice", "hash", 1.0)
        owner = account_owner(account.id)
        assert await store.resolve_identity(ALICE) == (None, {})
        await store.link_identity(ALICE, "Alice", account.id, 1.0)
        await store.set_preference(owner, "persona", "ada")
        link, prefs = await store.resolve_identity(ALICE)
        assert link is not None and prefs == {"persona": "ada"}
        assert await store.owner_epoch(owner) == 0
        await store.delete_account(account.id)
        assert await store.owner_epoch(owner) is None
        assert await store.resolve_identity(ALICE) == (None, {})


async def test_a_caller_changing_its_preferences_changes_nothing_cached(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        await store.set_preference(guest_owner(ALICE), "persona", "ada")
        _, prefs = await store.resolve_identity(ALICE)
        prefs["persona"] = "changed"
        assert (await store.resolve_identity(ALICE))[1] == {"persona": "ada"}


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db", owner_cache=8) as store:
        for n in range(50):
            await store.resolve_identity(Identity("web", str(n)))
        assert len(store._owners.links) == 8 and len(store._owners.preferences) == 8


_OTHER_PROCESS = """
import asyncio, sys
from bot.messages import Identity, OwnerId
from bot.store.sqlite import SqliteStore

async def main(path, action, *args):
    async with SqliteStore(path) as store:
        if action == "link":
            await store.link_identity(Identity("telegram", "1"), "Alice", args[0], 2.0)
        elif action == "unlink":
            await store.unlink_identity(Identity("telegram", "1"))
        else:
            await store.forget_owner(OwnerId(args[0]))

asyncio.run(main(*sys.argv[1:]))
"""


async def in_another_process(path: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OTHER_PROCESS, str(path), *args, cwd=Path(__file__).parents[2]
    )
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0


async def test_links_and_forgets_of_another_os_process_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as store:
        account = await store.create_account("alice", "hash", 1.0)
        await store.set_preference(guest_owner(ALICE), "persona", "ada")
        assert await store.resolve_identity(ALICE) == (None, {"persona": "ada"})  # cached
        assert await store.owner_epoch(guest_owner(ALICE)) == 0  # cached
        await in_another_process(path, "link", account.id)
        link, _ = await store.resolve_identity(ALICE)
        assert link is not None and link.account_id == account.id
        await in_another_process(path, "unlink")
        assert await store.resolve_identity(ALICE) == (None, {"persona": "ada"})
        await in_another_process(path, "forget", guest_owner(ALICE))
        assert await store.resolve_identity(ALICE) == (None, {})
        assert await store.owner_epoch(guest_owner(ALICE)) == 1


async def test_what_a_rolled_back_batch_read_is_forgotten(tmp_path: Path) -> None:
    """A link, read back in the same batch, then undone with the batch: not kept."""

    def breaks_after_writing(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE conversation_ids SET last = last + 1")
        raise RuntimeError("a broken invariant")

    async def break_the_batch() -> None:  # queued when its turn comes, after the others
        await store._db.write(breaks_after_writing)

    async with SqliteStore(tmp_path / "pb.db") as store:
        account = await store.create_account("alice", "hash", 1.0)
        outcomes = await asyncio.gather(
            store.link_identity(ALICE, "Alice", account.id, 1.0),
            store.resolve_identity(ALICE),
            break_the_batch(),
            return_exceptions=True,
        )
        assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
        assert await store.resolve_identity(ALICE) == (None, {})
