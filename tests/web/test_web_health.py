"""/healthz says 503 when the store answers reads but cannot write (a read-only file, a
full disk), and probes the store at most once per few seconds however often polled."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from adapters.web.health import StoreHealth
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.errors import StoreUnavailable
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.web_client import MakeClient, build_engine


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root (the immutable attribute), or by its mode."""
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(path)], check=True)
        return
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only files, and chattr +i is not available")
    path.chmod(stat.S_IRUSR)
    try:
        yield
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


async def test_healthz_is_503_on_a_read_only_sqlite_file(
    make_client: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as setup:
        await setup.create_account("alice", "h", 1.0)
    with read_only(path):
        async with SqliteStore(path) as store:
            assert await store.find_account("alice") is not None, "reads still work"
            client = await make_client(
                engine=build_engine(store),
                accounts=AccountService(store, hasher=PasswordHasher(TEST_PARAMS)),
                upkeep=store,
            )
            response = await client.get("/healthz")
            assert response.status == 503
            assert await response.json() == {"status": "unavailable", "store": "read-only"}


async def test_healthz_is_200_on_a_writable_sqlite_file(
    make_client: MakeClient, tmp_path: Path
) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        client = await make_client(
            engine=build_engine(store),
            accounts=AccountService(store, hasher=PasswordHasher(TEST_PARAMS)),
            upkeep=store,
        )
        response = await client.get("/healthz")
        assert response.status == 200


async def test_the_probe_is_cached_for_a_few_seconds() -> None:
    writes_fail = False

    def fault(operation: str) -> BaseException | None:
        if writes_fail and operation == "probe_write":
            return StoreUnavailable("disk full")
        return None

    clock = Clock(100.0)
    async with MemoryStore(fail=fault) as store:
        health = StoreHealth(store, ttl=5.0, clock=clock)
        for _ in range(50):
            assert await health.problem() is None
        assert health.probes == 1
        writes_fail = True
        clock.now += 4.0
        assert await health.problem() is None, "still the cached outcome"
        clock.now += 1.0
        assert await health.problem() == "read-only"
        assert health.probes == 2
