"""Fixtures for the web tests: a real app over MemoryStore, driven by aiohttp's client;
for the browser tests, the app serving on loopback over SQLite, and headless Chromium."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from adapters.web import PrometheusMetrics, WebAdapter, create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.backends.guard import GuardPolicy
from bot.backends.offline import OfflineBackend
from bot.config import WebSettings
from bot.engine import Engine
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PERSONAS, Site
from tests.support.clocks import Clock
from tests.support.engine import build_engine as build_engine_on
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
    store: MemoryStore,
    engine: Engine,
    accounts: AccountService,
    metrics: PrometheusMetrics,
) -> MakeClient:
    """Build the app (with any create_app options) and a client for it."""

    async def make(**options: Any) -> Client:
        options.setdefault("metrics", metrics)
        options.setdefault("upkeep", store)
        app = create_app(
            options.pop("engine", engine), options.pop("accounts", accounts), **options
        )
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


# -- a real browser -----------------------------------------------------------------


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with SqliteStore(tmp_path / "browser.db") as store:
        # A small word delay, so the reply visibly streams in.
        backend = OfflineBackend(seed=1, word_delay=0.005)
        engine = build_engine_on(
            store, backend, personas=PersonaLibrary.from_directory(PERSONAS), policy=GuardPolicy()
        )
        app = create_app(
            engine,
            AccountService(store),  # the real OWASP argon2 parameters
            upkeep=store,
            settings=WebSettings(host="127.0.0.1", port=0),
            telegram_bot_username="personabridge_bot",
        )
        adapter = WebAdapter(app, access_log=False)
        async with adapter:
            yield Site(adapter.url, engine, store)


@pytest.fixture
async def browser(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Browser]:
    # Chromium puts a Unix socket in TMPDIR, and socket paths may not exceed 107
    # bytes: pytest's tmp_path is too deep for it, so use a short folder of our own.
    with tempfile.TemporaryDirectory(prefix="pb-chromium-", dir="/tmp") as home:
        monkeypatch.setenv("HOME", home)
        monkeypatch.setenv("TMPDIR", home)
        async with async_playwright() as playwright:
            chromium = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            await chromium.close()
