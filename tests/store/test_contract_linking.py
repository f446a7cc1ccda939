"""The Store contract for two-step linking: capped link codes, code peeking, pending
links, guest data left with the guest, and account notices (every store, as in
``test_contract.py``)."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import StoreError
from bot.messages import ConversationKey, Identity, NewTurn, account_owner, guest_owner
from bot.store.base import Account, Notice, PendingLink, Store
from bot.store.dynamo import DynamoStore

ALICE_TG = Identity("telegram", "1001")
ALICE_DC = Identity("discord", "2002")


async def new_account(store: Store, name: str = "alice") -> Account:
    return await store.create_account(name, f"hash-of-{name}", 10.0)


# -- link codes: peek and cap -----------------------------------------------------------


async def test_peek_names_the_account_without_using_the_code(store: Store) -> None:
    account = await new_account(store)
    await store.put_link_code("hash-1", account.id, 100.0)
    assert await store.peek_link_code("hash-1", 50.0) == account.id
    assert await store.peek_link_code("hash-1", 50.0) == account.id
    assert await store.take_link_code("hash-1", 50.0) == account.id
    assert await store.peek_link_code("hash-1", 50.0) is None


@pytest.mark.parametrize(
    "now", [pytest.param(100.0, id="at-expiry"), pytest.param(101.0, id="after-expiry")]
)
async def test_peek_refuses_an_expired_or_unknown_code(store: Store, now: float) -> None:
    account = await new_account(store)
    await store.put_link_code("hash-1", account.id, 100.0)
    assert await store.peek_link_code("hash-1", now) is None
    assert await store.peek_link_code("never-made", 0.0) is None


async def test_a_capped_account_keeps_its_newest_codes(store: Store) -> None:
    account = await new_account(store)
    for n in range(8):
        await store.put_link_code(f"code-{n}", account.id, 1000.0 + n, max_live=3)
    taken = [await store.take_link_code(f"code-{n}", 50.0) for n in range(8)]
    assert taken == [None] * 5 + [account.id] * 3


async def test_the_cap_is_per_account(store: Store) -> None:
    alice, bob = await new_account(store), await new_account(store, "bob")
    await store.put_link_code("alice-1", alice.id, 1000.0, max_live=1)
    await store.put_link_code("bob-1", bob.id, 1000.0, max_live=1)
    await store.put_link_code("alice-2", alice.id, 1001.0, max_live=1)
    assert await store.peek_link_code("alice-1", 0.0) is None
    assert await store.peek_link_code("bob-1", 0.0) == bob.id
    assert await store.peek_link_code("alice-2", 0.0) == alice.id


async def test_concurrent_capped_puts_never_exceed_the_cap(store: Store) -> None:
    account = await new_account(store)
    await asyncio.gather(
        *(store.put_link_code(f"code-{n}", account.id, 1000.0 + n, max_live=2) for n in range(6))
    )
    live = [n for n in range(6) if await store.peek_link_code(f"code-{n}", 0.0) is not None]
    assert len(live) == 2


async def test_capped_put_for_an_unknown_account_fails(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.put_link_code("code", "no-such-account", 1000.0, max_live=3)


# -- pending links ----------------------------------------------------------------------


async def test_pending_link_is_taken_once(store: Store) -> None:
    account = await new_account(store)
    pending = PendingLink(ALICE_TG, account.id, "hash-1", 100.0)
    await store.put_pending_link(pending)
    assert await store.take_pending_link(ALICE_TG, 50.0) == pending
    assert await store.take_pending_link(ALICE_TG, 50.0) is None


async def test_pending_link_belongs_to_its_identity(store: Store) -> None:
    account = await new_account(store)
    await store.put_pending_link(PendingLink(ALICE_TG, account.id, "hash-1", 100.0))
    assert await store.take_pending_link(ALICE_DC, 50.0) is None
    assert await store.take_pending_link(Identity("discord", "1001"), 50.0) is None
    assert await store.take_pending_link(ALICE_TG, 50.0) is not None


async def test_a_newer_pending_link_replaces_the_older(store: Store) -> None:
    alice, bob = await new_account(store), await new_account(store, "bob")
    await store.put_pending_link(PendingLink(ALICE_TG, alice.id, "hash-1", 100.0))
    await store.put_pending_link(PendingLink(ALICE_TG, bob.id, "hash-2", 120.0))
    assert await store.take_pending_link(ALICE_TG, 50.0) == PendingLink(
        ALICE_TG, bob.id, "hash-2", 120.0
    )


@pytest.mark.parametrize(
    "now", [pytest.param(100.0, id="at-expiry"), pytest.param(500.0, id="after-expiry")]
)
async def test_an_expired_pending_link_is_refused(store: Store, now: float) -> None:
    account = await new_account(store)
    await store.put_pending_link(PendingLink(ALICE_TG, account.id, "hash-1", 100.0))
    assert await store.take_pending_link(ALICE_TG, now) is None


async def test_concurrent_takes_of_a_pending_link_have_one_winner(store: Store) -> None:
    account = await new_account(store)
    await store.put_pending_link(PendingLink(ALICE_TG, account.id, "hash-1", 100.0))
    taken = await asyncio.gather(*(store.take_pending_link(ALICE_TG, 50.0) for _ in range(10)))
    assert sum(1 for t in taken if t is not None) == 1


async def test_pending_link_for_an_unknown_account_fails(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.put_pending_link(PendingLink(ALICE_TG, "no-such-account", "h", 100.0))


async def test_pending_links_purge_when_expired(store: Store) -> None:
    account = await new_account(store)
    await store.put_pending_link(PendingLink(ALICE_TG, account.id, "hash-1", 100.0))
    await store.put_pending_link(PendingLink(ALICE_DC, account.id, "hash-2", 300.0))
    purged = await store.purge_expired(200.0)
    if not isinstance(store, DynamoStore):  # DynamoDB leaves it to its TTL
        assert purged == 1
        assert await store.take_pending_link(ALICE_TG, 0.0) is None
    assert await store.take_pending_link(ALICE_DC, 200.0) is not None


# -- linking without moving the guest's data -------------------------------------------


async def test_link_without_moving_leaves_the_guest_history_with_the_guest(store: Store) -> None:
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    conversation = ConversationKey(guest, "ada", "direct")
    await store.append_turns(conversation, [NewTurn("user", "as a guest", "Alice", 1.0)], 0, 1.0)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0, move_guest_data=False)
    assert (await store.get_identity(ALICE_TG)) is not None
    assert await store.export_owner(owner) == []
    kept = await store.export_owner(guest)
    assert [t.text for r in kept for t in r.turns] == ["as a guest"]
    # unlinked again, the identity finds its guest history where it left it
    await store.unlink_identity(ALICE_TG)
    window = await store.load_window(conversation, 10)
    assert [t.text for t in window.turns] == ["as a guest"]


# -- notices ----------------------------------------------------------------------------


async def test_notices_newest_first_and_limited(store: Store) -> None:
    account = await new_account(store)
    for n in range(4):
        await store.add_notice(account.id, f"notice {n}", 10.0 + n, 1000.0)
    assert await store.list_notices(account.id, 20.0, 3) == [
        Notice(13.0, "notice 3"),
        Notice(12.0, "notice 2"),
        Notice(11.0, "notice 1"),
    ]


async def test_notices_belong_to_one_account_and_expire(store: Store) -> None:
    alice, bob = await new_account(store), await new_account(store, "bob")
    await store.add_notice(alice.id, "for alice, old", 10.0, 50.0)
    await store.add_notice(alice.id, "for alice", 11.0, 500.0)
    await store.add_notice(bob.id, "for bob", 12.0, 500.0)
    assert await store.list_notices(alice.id, 100.0, 10) == [Notice(11.0, "for alice")]
    assert await store.list_notices(bob.id, 100.0, 10) == [Notice(12.0, "for bob")]


async def test_notices_go_with_the_account(store: Store) -> None:
    account = await new_account(store)
    await store.add_notice(account.id, "linked", 10.0, 1000.0)
    await store.put_pending_link(PendingLink(ALICE_TG, account.id, "hash-1", 1000.0))
    await store.delete_account(account.id)
    assert await store.list_notices(account.id, 20.0, 10) == []
    with pytest.raises(StoreError):
        await store.add_notice(account.id, "late", 30.0, 1000.0)
