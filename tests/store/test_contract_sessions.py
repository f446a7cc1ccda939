"""The Store contract, continued: ending an account's other web sessions (every store)."""

from __future__ import annotations

from bot.store.base import Store
from tests.store.test_contract import new_account


async def test_delete_web_sessions_keeps_only_the_one_asked(store: Store) -> None:
    alice = await new_account(store)
    bob = await new_account(store, "bob")
    for token in ("a1", "a2", "a3"):
        await store.put_web_session(token, alice.id, 1000.0)
    await store.put_web_session("b1", bob.id, 1000.0)
    assert await store.delete_web_sessions(alice.id, keep="a2") == 2
    assert await store.get_web_session("a1", 10.0) is None
    assert await store.get_web_session("a3", 10.0) is None
    assert await store.get_web_session("a2", 10.0) is not None
    assert await store.get_web_session("b1", 10.0) is not None, "another account's stays"
    assert await store.delete_web_sessions(alice.id) == 1
    assert await store.get_web_session("a2", 10.0) is None
    assert await store.delete_web_sessions(alice.id) == 0
