"""Fixtures for the web tests: a real app over MemoryStore, driven by aiohttp's client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from adapters.web import PrometheusMetrics, create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.engine import Engine
from bot.store.memory import MemoryStore
from tests.support.clocks import Clock
from tests.support.web_client import Client, MakeClient, build_engine


@pytest.fixture
def engine(store: MemoryStore) -> Engine:
    return build_engine(store)


@pytest.fixture
def clock() -> Clock:
    """The accounts service's wall clock (sessions expire by it)."""
    return Clock()


@pytest.fixture
def accounts(store: MemoryStore, clock: Clock) -> AccountService:
    return AccountService(store, hasher=PasswordHasher(TEST_PARAMS), clock=clock)


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    engine: Engine,
    accounts: AccountService,
    metrics: PrometheusMetrics,
) -> MakeClient:
    """Build the app (with any create_app options) and a client for it."""

    async def make(**options: Any) -> Client:
        options.setdefault("metrics", metrics)
        app = create_app(
            options.pop("engine", engine), options.pop("accounts", accounts), **options
        )
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()
