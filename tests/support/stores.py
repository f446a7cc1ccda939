"""The ``store`` fixture, once for every folder (a pytest plugin, registered in
``tests/conftest.py``).

Which store a test gets is the ``store_kind`` fixture's choice: ``memory`` unless a
folder's conftest or a module overrides it, with one kind (``store_kind =
store_kinds("sqlite")``) or several, each test then running once per kind. Adding an
implementation is one more entry in ``STORES`` (or ``SERVED``, for a store that needs a
server); no test changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.store.base import Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore

#: How to make a fresh, empty store of each kind, given the path its file may take.
STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda path: MemoryStore(),
    "sqlite": lambda path: SqliteStore(path),
    # without the window cache, every window is read from the file
    "sqlite-nocache": lambda path: SqliteStore(path, window_cache=0),
}
#: Stores that need a server: made by the fixture of that name (``tests.support.dynamo``),
#: which gives a factory.
SERVED: dict[str, str] = {"dynamodb": "dynamo_stores"}
#: Every kind the ``store`` fixture can open.
ALL_KINDS = (*STORES, *SERVED)


def store_kinds(*kinds: str) -> Any:
    """A ``store_kind`` fixture for a conftest or module: its tests run on each of
    ``kinds`` (ids are the kinds' names, as ``test_x[sqlite]``; one kind adds no id)."""
    unknown = set(kinds) - set(ALL_KINDS)
    assert kinds and not unknown, f"no such store kind: {sorted(unknown)}"
    if len(kinds) == 1:
        (only,) = kinds

        @pytest.fixture(name="store_kind")
        def one_kind() -> str:
            return only

        return one_kind

    @pytest.fixture(name="store_kind", params=[pytest.param(kind, id=kind) for kind in kinds])
    def store_kind(request: pytest.FixtureRequest) -> str:
        return str(request.param)

    return store_kind


@pytest.fixture
def store_kind() -> str:
    """The store tests get unless their folder or module says otherwise."""
    return "memory"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a SQLite store keeps its file (a folder that does not exist yet: the store
    makes it)."""
    return tmp_path / "store" / "personabridge.db"


@pytest.fixture
async def store(
    store_kind: str, db_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    """A fresh, open store of ``store_kind``, closed after the test."""
    if store_kind in SERVED:
        make = request.getfixturevalue(SERVED[store_kind])
        async with make() as served:
            yield served
        return
    async with STORES[store_kind](db_path) as opened:
        yield opened
