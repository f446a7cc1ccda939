"""The ``store`` fixture: every Store implementation, each run through the one contract.

Adding an implementation (say ``DynamoStore`` against a local endpoint) is one more
entry in ``STORES``; no test changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore

#: How to make a fresh, empty store of each kind, given a private temporary directory.
STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp_path: MemoryStore(),
    "sqlite": lambda tmp_path: SqliteStore(tmp_path / "store" / "personabridge.db"),
    # without the window cache, every window is read from the file
    "sqlite-nocache": lambda tmp_path: SqliteStore(tmp_path / "nocache.db", window_cache=0),
}


@pytest.fixture(params=[pytest.param(name, id=name) for name in STORES])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with STORES[request.param](tmp_path) as opened:
        yield opened
