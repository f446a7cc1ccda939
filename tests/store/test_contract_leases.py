"""The Store contract, continued: conversation leases, reply pairs, recorded events and
the inbox (run on every store by the ``store`` fixture of ``conftest.py``)."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import ConversationBusy, VersionConflict
from bot.inbox import MAX_PAYLOAD_BYTES, Inbox
from bot.messages import ConversationKey, NewTurn, OwnerId, guest_owner
from bot.store.base import Lease, Store
from tests.store.test_contract import ALICE_TG, key

KEY = key(guest_owner(ALICE_TG))


def user(text: str, at: float = 1.0) -> NewTurn:
    return NewTurn("user", text, "Alice", at)


def reply(text: str, to: int, at: float = 2.0) -> NewTurn:
    return NewTurn("assistant", text, "Ada", at, to)


async def version_of(store: Store, conversation: ConversationKey = KEY) -> int:
    return (await store.load_window(conversation, 1)).version


async def test_a_reply_keeps_the_user_turn_it_answers(store: Store) -> None:
    version, (asked,) = await store.append_turns(KEY, [user("hi")], 0, 1.0)
    version, (answer,) = await store.append_turns(KEY, [reply("hello", asked.seq)], version, 2.0)
    assert answer.reply_to == asked.seq and asked.reply_to is None
    window = await store.load_window(KEY, 10)
    assert [(t.seq, t.reply_to) for t in window.turns] == [(1, None), (2, 1)]
    (record,) = await store.export_owner(KEY.owner)
    assert [t.reply_to for t in record.turns] == [None, 1]


async def test_a_taken_lease_refuses_another_holder_and_stores_nothing(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    with pytest.raises(ConversationBusy) as busy:
        await store.append_turns(KEY, [user("b")], version, 2.0, take_lease=Lease("w2", 200.0))
    assert busy.value.until == 100.0
    window = await store.load_window(KEY, 10)
    assert (window.version, [t.text for t in window.turns]) == (version, ["a"])


async def test_the_holder_releases_with_its_reply(store: Store) -> None:
    version, (asked,) = await store.append_turns(
        KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0)
    )
    version, _ = await store.append_turns(
        KEY, [reply("ra", asked.seq)], version, 2.0, release_lease="w1"
    )
    version, _ = await store.append_turns(
        KEY, [user("b")], version, 3.0, take_lease=Lease("w2", 100.0)
    )
    assert [t.text for t in (await store.load_window(KEY, 10)).turns] == ["a", "ra", "b"]


async def test_an_expired_lease_is_free(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("dead", 50.0))
    version, _ = await store.append_turns(
        KEY, [user("b")], version, 50.0, take_lease=Lease("w2", 150.0)
    )
    # and it is w2's now: the dead holder's release does nothing
    await store.release_lease(KEY, "dead")
    with pytest.raises(ConversationBusy):
        await store.append_turns(KEY, [user("c")], version, 60.0, take_lease=Lease("w3", 160.0))


async def test_release_by_another_holder_leaves_the_lease(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    version, _ = await store.append_turns(
        KEY, [reply("r", 1)], version, 2.0, release_lease="someone-else"
    )
    with pytest.raises(ConversationBusy):
        await store.append_turns(KEY, [user("b")], version, 3.0, take_lease=Lease("w2", 100.0))
    await store.release_lease(KEY, "w1")
    await store.append_turns(KEY, [user("b")], version, 3.0, take_lease=Lease("w2", 100.0))


async def test_an_append_without_a_lease_passes_a_held_one(store: Store) -> None:
    """Past the wait, a message is kept without the lease (for /retry)."""
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    version, _ = await store.append_turns(KEY, [user("b")], version, 2.0)
    with pytest.raises(ConversationBusy):
        await store.append_turns(KEY, [user("c")], version, 3.0, take_lease=Lease("w2", 100.0))


async def test_the_same_holder_takes_its_lease_again(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    await store.append_turns(KEY, [user("b")], version, 2.0, take_lease=Lease("w1", 100.0))


async def test_a_state_save_keeps_the_lease(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    version = await store.save_conversation_state(KEY, version, summary="so far")
    with pytest.raises(ConversationBusy):
        await store.append_turns(KEY, [user("b")], version, 2.0, take_lease=Lease("w2", 100.0))


async def test_a_reset_frees_the_lease(store: Store) -> None:
    await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    await store.reset_conversation(KEY)
    version = await version_of(store)
    await store.append_turns(KEY, [user("b")], version, 2.0, take_lease=Lease("w2", 100.0))


async def test_concurrent_takes_have_one_winner(store: Store) -> None:
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0)

    async def take(holder: str) -> str | None:
        try:
            await store.append_turns(
                KEY, [user(holder)], version, 2.0, take_lease=Lease(holder, 100.0)
            )
        except (ConversationBusy, VersionConflict):
            return None
        return holder

    winners = [w for w in await asyncio.gather(*(take(f"w{n}") for n in range(5))) if w]
    assert len(winners) == 1
    texts = [t.text for t in (await store.load_window(KEY, 10)).turns]
    assert texts == ["a", winners[0]]


async def test_leases_belong_to_one_conversation(store: Store) -> None:
    other = key(OwnerId("guest:telegram:9"))
    await store.append_turns(KEY, [user("a")], 0, 1.0, take_lease=Lease("w1", 100.0))
    await store.append_turns(other, [user("b")], 0, 1.0, take_lease=Lease("w2", 100.0))


# -- recorded events and the inbox --------------------------------------------------------


async def test_an_event_is_claimed_once_until_it_expires(store: Store) -> None:
    assert await store.claim_event("telegram", "41", 10.0, 100.0)
    assert not await store.claim_event("telegram", "41", 20.0, 200.0)
    assert await store.claim_event("discord", "41", 20.0, 200.0)  # sources apart
    assert await store.claim_event("telegram", "41", 100.0, 300.0)  # expired


async def test_concurrent_claims_of_one_event_have_one_winner(store: Store) -> None:
    claims = [store.claim_event("telegram", "7", 10.0, 100.0) for _ in range(6)]
    assert sorted(await asyncio.gather(*claims)) == [False] * 5 + [True]


async def test_the_inbox_holds_an_event_until_it_is_finished(store: Store) -> None:
    assert await store.claim_event(
        "telegram", "1", 10.0, 1000.0, payload='{"update_id": 1}', hold_until=40.0
    )
    assert not await store.claim_event("telegram", "1", 11.0, 1000.0, payload="{}")
    assert await store.take_inbox("telegram", 20.0, 60.0, 10) == []  # still held
    (entry,) = await store.take_inbox("telegram", 40.0, 70.0, 10)
    assert (entry.event_id, entry.payload, entry.received_at) == ("1", '{"update_id": 1}', 10.0)
    assert await store.take_inbox("telegram", 50.0, 80.0, 10) == []  # held anew until 70
    assert await store.take_inbox("discord", 90.0, 99.0, 10) == []
    await store.finish_inbox("telegram", "1")
    assert await store.take_inbox("telegram", 90.0, 99.0, 10) == []
    assert not await store.claim_event("telegram", "1", 90.0, 1000.0)  # still recorded


async def test_two_takers_never_get_one_entry(store: Store) -> None:
    for n in range(4):
        await store.claim_event("telegram", str(n), 1.0, 1000.0, payload="{}", hold_until=1.0)
    taken = await asyncio.gather(*(store.take_inbox("telegram", 5.0, 50.0, 10) for _ in range(3)))
    ids = [entry.event_id for batch in taken for entry in batch]
    assert sorted(ids) == ["0", "1", "2", "3"]


async def test_take_inbox_takes_at_most_the_limit_oldest_first(store: Store) -> None:
    for n in range(3):
        await store.claim_event("telegram", f"e{n}", float(n), 1000.0, payload="{}")
    taken = await store.take_inbox("telegram", 10.0, 50.0, 2)
    assert [entry.event_id for entry in taken] == ["e0", "e1"]


async def test_an_event_too_large_for_the_inbox_is_still_answered_once(store: Store) -> None:
    inbox = Inbox(store, "telegram", hold=10.0, sweep=1.0, keep=100.0, clock=lambda: 5.0)
    assert await inbox.accept("big", "x" * (MAX_PAYLOAD_BYTES + 1))
    assert not await inbox.accept("big", "x")
    assert inbox.received_at("big") == 5.0
    assert await store.take_inbox("telegram", 1e9, 1e9, 10) == []


async def test_an_append_of_no_turns_takes_the_lease_alone(store: Store) -> None:
    """What /retry does: the lease, and nothing stored."""
    version, _ = await store.append_turns(KEY, [user("a")], 0, 1.0)
    version, stored = await store.append_turns(
        KEY, [], version, 2.0, take_lease=Lease("retry", 100.0)
    )
    assert stored == ()
    window = await store.load_window(KEY, 10)
    assert (window.version, [t.text for t in window.turns]) == (version, ["a"])
    with pytest.raises(ConversationBusy):
        await store.append_turns(KEY, [user("b")], version, 3.0, take_lease=Lease("w2", 100.0))
    await store.append_turns(KEY, [reply("r", 1)], version, 3.0, release_lease="retry")
