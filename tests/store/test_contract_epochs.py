"""The Store contract, continued: owner epochs and tombstones (every implementation).

A write that began before its owner was forgotten or deleted is refused with
OwnerForgotten and stores nothing; a forgotten guest chats again in its new epoch; a
deleted account's owner takes no write of any kind again.
"""

from __future__ import annotations

import pytest

from bot.errors import OwnerForgotten
from bot.messages import Identity, account_owner, guest_owner
from bot.store.base import Store, Usage
from tests.store.test_contract import chat, key, new_account, said, texts_in

GUEST = guest_owner(Identity("telegram", "1001"))


async def test_an_owner_starts_at_epoch_zero(store: Store) -> None:
    assert await store.owner_epoch(GUEST) == 0


async def test_forget_moves_the_epoch_on_and_refuses_the_old_epochs_writes(
    store: Store,
) -> None:
    conversation = key(GUEST)
    epoch = await store.owner_epoch(GUEST)
    assert epoch is not None
    version = await chat(store, conversation, "before")
    await store.forget_owner(GUEST)
    assert await store.owner_epoch(GUEST) == epoch + 1
    # a reply still being written from before the forget: refused, at any version
    for stale_version in (version, 0):
        with pytest.raises(OwnerForgotten):
            await store.append_turns(
                conversation, said("late", role="assistant"), stale_version, 2.0, epoch=epoch
            )
    with pytest.raises(OwnerForgotten):
        await store.save_conversation_state(
            conversation, 0, backend_state={"chat": "old"}, epoch=epoch
        )
    assert await texts_in(store, conversation) == []
    assert await store.export_owner(GUEST) == []


async def test_a_forgotten_guest_chats_again_in_its_new_epoch(store: Store) -> None:
    conversation = key(GUEST)
    await chat(store, conversation, "before")
    await store.forget_owner(GUEST)
    epoch = await store.owner_epoch(GUEST)
    version = (await store.load_window(conversation, 1)).version
    version, _ = await store.append_turns(conversation, said("again"), version, 3.0, epoch=epoch)
    await store.save_conversation_state(conversation, version, backend_state={"x": 1}, epoch=epoch)
    assert await texts_in(store, conversation) == ["again"]
    # forgetting twice moves on twice: the first new epoch's writes are refused too
    await store.forget_owner(GUEST)
    with pytest.raises(OwnerForgotten):
        await store.append_turns(conversation, said("x"), 0, 4.0, epoch=epoch)


async def test_epochs_are_per_owner(store: Store) -> None:
    other = guest_owner(Identity("telegram", "3003"))
    epoch = await store.owner_epoch(other)
    await store.forget_owner(GUEST)
    assert await store.owner_epoch(other) == epoch
    await store.append_turns(key(other), said("mine"), 0, 1.0, epoch=epoch)
    assert await texts_in(store, key(other)) == ["mine"]


async def test_a_deleted_accounts_owner_takes_no_write_again(store: Store) -> None:
    account = await new_account(store)
    owner = account_owner(account.id)
    conversation = key(owner)
    epoch = await store.owner_epoch(owner)
    version = await chat(store, conversation, "hello")
    await store.delete_account(account.id)
    assert await store.owner_epoch(owner) is None
    for write_epoch in (epoch, None):
        with pytest.raises(OwnerForgotten):
            await store.append_turns(conversation, said("late"), version, 2.0, epoch=write_epoch)
        with pytest.raises(OwnerForgotten):
            await store.append_turns(conversation, said("late"), 0, 2.0, epoch=write_epoch)
        with pytest.raises(OwnerForgotten):
            await store.save_conversation_state(conversation, 0, summary="s", epoch=write_epoch)
    assert await store.export_owner(owner) == []
    assert await texts_in(store, conversation) == []


async def test_a_deleted_accounts_owner_keeps_no_preference_or_usage(
    store: Store, request: pytest.FixtureRequest
) -> None:
    if "dynamo" in request.node.name:
        pytest.skip("DynamoDB checks the tombstone in conversation transactions only")
    account = await new_account(store)
    owner = account_owner(account.id)
    await store.delete_account(account.id)
    await store.set_preference(owner, "persona", "ada")
    await store.add_usage(owner, 10, 20)
    assert await store.get_preferences(owner) == {}
    assert await store.get_usage(owner) == Usage()


async def test_writes_without_an_epoch_still_work_for_live_owners(store: Store) -> None:
    """Callers that do not pass an epoch (admin scripts, older code) are not refused."""
    await chat(store, key(GUEST), "one")
    await store.forget_owner(GUEST)
    await chat(store, key(GUEST), "two")
    assert await texts_in(store, key(GUEST)) == ["two"]


async def test_epoch_and_window_read_what_the_two_reads_would(store: Store) -> None:
    conversation = key(GUEST)
    assert await store.epoch_and_window(conversation, 10) == (
        0,
        await store.load_window(conversation, 10),
    )
    await chat(store, conversation, "one", "two", "three")
    epoch, window = await store.epoch_and_window(conversation, 2)
    assert epoch == await store.owner_epoch(GUEST) == 0
    assert window == await store.load_window(conversation, 2)
    assert [turn.text for turn in window.turns] == ["two", "three"]


async def test_epoch_and_window_after_a_forget_give_the_new_epoch_and_no_old_turn(
    store: Store,
) -> None:
    """What a message reads first: after a /forget, the old epoch's turns are gone, and
    writes made with the epoch it read before the forget are refused."""
    conversation = key(GUEST)
    await chat(store, conversation, "before")
    old_epoch, old_window = await store.epoch_and_window(conversation, 10)
    await store.forget_owner(GUEST)
    epoch, window = await store.epoch_and_window(conversation, 10)
    assert old_epoch is not None and epoch == old_epoch + 1
    assert window.turns == ()
    with pytest.raises(OwnerForgotten):
        await store.append_turns(
            conversation, said("late"), old_window.version, 2.0, epoch=old_epoch
        )
    await store.append_turns(conversation, said("again"), window.version, 3.0, epoch=epoch)
    assert await texts_in(store, conversation) == ["again"]


async def test_epoch_and_window_of_a_deleted_accounts_owner_have_no_epoch(store: Store) -> None:
    account = await new_account(store)
    owner = account_owner(account.id)
    await chat(store, key(owner), "hello")
    await store.delete_account(account.id)
    epoch, window = await store.epoch_and_window(key(owner), 10)
    assert epoch is None
    assert window.turns == ()
