"""Fixtures for the security suite: the real engine and accounts service over a real
SQLite file, and the real web app serving on loopback (with the Telegram webhook and
the Discord interactions endpoint mounted when a test asks for them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.engine import Engine
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.fakes import WindowEcho
from tests.support.stores import store_kinds
from tests.support.web_site import CountingMetrics, MakeSite, Site, build_engine, serve


@pytest.fixture
def clock() -> Clock:
    """Wall time for the engine and the accounts service (codes and sessions expire by it)."""
    return Clock()


store_kind = store_kinds("sqlite")


@pytest.fixture
def metrics() -> CountingMetrics:
    return CountingMetrics()


@pytest.fixture
def backend() -> WindowEcho:
    return WindowEcho()


@pytest.fixture
def engine(
    store: SqliteStore, backend: WindowEcho, clock: Clock, metrics: CountingMetrics
) -> Engine:
    return build_engine(store, backend=backend, clock=clock, metrics=metrics)


@pytest.fixture
def accounts(store: SqliteStore, clock: Clock) -> AccountService:
    """As ``bot.app`` builds it (the production login throttle) but with cheap hashing:
    argon2's cost is not what these tests are about."""
    return AccountService(store, hasher=PasswordHasher(TEST_PARAMS), clock=clock)


@pytest.fixture
async def site(store: SqliteStore, engine: Engine, accounts: AccountService) -> AsyncIterator[Site]:
    async with serve(engine, accounts, upkeep=store) as running:
        yield running


@pytest.fixture
def make_site(store: SqliteStore, engine: Engine, accounts: AccountService) -> MakeSite:
    """``async with make_site(**serve_options) as site``: the app with other options."""

    def make(**options: Any) -> AbstractAsyncContextManager[Site]:
        options.setdefault("upkeep", store)
        return serve(options.pop("engine", engine), options.pop("accounts", accounts), **options)

    return make
