"""The pacer and the per-chat ordering of updates, on their own (no HTTP)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from telegram import Update

from adapters.telegram.ordering import ChatOrderedProcessor
from adapters.telegram.pacing import ChatPacer


async def test_pacer_spaces_writes_per_chat_and_shares_the_budget() -> None:
    pacer = ChatPacer()
    started = time.monotonic()
    stamps: dict[str, list[float]] = {"a": [], "b": []}

    async def write(chat: str) -> None:
        async with pacer.turn(chat, 0.1):
            stamps[chat].append(time.monotonic() - started)
            await asyncio.sleep(0.05)  # the request takes a while: the gap starts after it

    # Two replies streaming at once into chat "a" share its slots; "b" is independent.
    await asyncio.gather(*(write("a") for _ in range(4)), write("b"))
    a = stamps["a"]
    assert all(later - earlier >= 0.145 for earlier, later in itertools.pairwise(a))
    assert stamps["b"][0] < a[1], "chat b did not wait for chat a's slots"


async def test_pacer_hold_delays_the_next_write() -> None:
    pacer = ChatPacer()
    pacer.hold("a", 0.2)
    started = time.monotonic()
    await pacer.ready("a")
    assert time.monotonic() - started >= 0.19


def update(update_id: int, chat: int, user: int) -> Update:
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": chat, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "U"},
                "text": "x",
            },
        },
        None,
    )


async def test_one_members_updates_run_in_order_others_concurrently() -> None:
    processor = ChatOrderedProcessor(100, max_queued=10)
    log: list[tuple[str, int]] = []

    async def work(name: str, n: int, pause: float) -> None:
        log.append((name, n))
        await asyncio.sleep(pause)
        log.append((name, -n))

    await asyncio.gather(
        processor.process_update(update(1, 5, 5), work("alice", 1, 0.05)),
        processor.process_update(update(2, 5, 5), work("alice", 2, 0.0)),
        processor.process_update(update(3, 6, 6), work("bob", 1, 0.0)),
    )
    alice = [entry for entry in log if entry[0] == "alice"]
    assert alice == [("alice", 1), ("alice", -1), ("alice", 2), ("alice", -2)]
    assert log.index(("bob", -1)) < log.index(("alice", -1)), "bob did not wait for alice"
    assert len(processor) == 0, "locks are dropped when idle"


async def test_a_flood_is_dropped_beyond_the_queue_limit() -> None:
    processor = ChatOrderedProcessor(100, max_queued=2)
    done: list[int] = []

    async def work(n: int) -> Any:
        await asyncio.sleep(0.01)
        done.append(n)

    await asyncio.gather(*(processor.process_update(update(n, 5, 5), work(n)) for n in range(1, 7)))
    assert done == [1, 2, 3], "one running, two waiting; the rest dropped (and closed)"
