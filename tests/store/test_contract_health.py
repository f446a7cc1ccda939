"""The Store contract, continued: the write probe that /healthz uses (every store)."""

from __future__ import annotations

from bot.store.base import Store
from tests.store.test_contract import new_account


async def test_probe_write_succeeds_and_changes_nothing_visible(store: Store) -> None:
    account = await new_account(store)
    for _ in range(3):
        await store.probe_write()
    assert await store.get_account(account.id) == account
    assert await store.find_account("alice") == account
