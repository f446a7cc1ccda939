"""Fixtures for the accounts service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auth import TEST_PARAMS, AccountService, LoginThrottle, PasswordHasher
from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite")])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backing: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "a.db")
    async with backing:
        yield backing


@pytest.fixture
def service(store: Store, clock: Clock) -> AccountService:
    return AccountService(
        store,
        hasher=PasswordHasher(TEST_PARAMS),
        throttle=LoginThrottle(limits={"account": 10, "address": 30}, clock=clock),
        clock=clock,
    )
