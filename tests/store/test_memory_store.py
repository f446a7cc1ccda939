"""What only MemoryStore has: the fault hook that lets tests make the store fail."""

from __future__ import annotations

import pytest

from bot.errors import StoreUnavailable
from bot.messages import ConversationKey, Identity, NewTurn, guest_owner
from bot.store.memory import MemoryStore

KEY = ConversationKey(guest_owner(Identity("telegram", "1")), "ada", "direct")


async def test_fault_hook_fails_the_chosen_operation_only() -> None:
    calls: list[str] = []

    def fail(operation: str) -> BaseException | None:
        calls.append(operation)
        return StoreUnavailable("disk on fire") if operation == "append_turns" else None

    async with MemoryStore(fail=fail) as store:
        window = await store.load_window(KEY, 10)
        with pytest.raises(StoreUnavailable, match="disk on fire"):
            await store.append_turns(KEY, [NewTurn("user", "hi", "A", 1.0)], window.version, 1.0)
        assert (await store.load_window(KEY, 10)).turns == ()  # nothing was stored
    assert calls == ["load_window", "append_turns", "load_window"]


async def test_fault_hook_can_be_switched_off_by_the_test() -> None:
    broken = True
    async with MemoryStore(fail=lambda op: StoreUnavailable("down") if broken else None) as store:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        broken = False
        await store.ping()


async def test_a_store_that_is_not_open_is_unavailable() -> None:
    store = MemoryStore()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    async with store:
        await store.set_preference(KEY.owner, "persona", "ada")
    async with store:  # reopening keeps the data, like a file would
        assert await store.get_preferences(KEY.owner) == {"persona": "ada"}


async def test_backend_state_must_be_json() -> None:
    async with MemoryStore() as store:
        with pytest.raises(TypeError):
            await store.save_conversation_state(KEY, 0, backend_state={"x": object()})
