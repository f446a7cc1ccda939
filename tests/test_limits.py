"""Token buckets and keyed locks."""

from __future__ import annotations

import asyncio

from bot.limits import HeldLocks, KeyedLocks, RateLimiter
from bot.linking import hash_link_code, looks_like_link_code, new_link_code
from tests.support.clocks import Clock


def test_bucket_allows_burst_then_refills() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(per_second=1, burst=3, clock=clock)
    assert [limiter.try_acquire("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("a") == 1.0
    clock.now = 1.0
    assert limiter.try_acquire("a") and not limiter.try_acquire("a")
    assert limiter.try_acquire("b")


def test_bucket_memory_stays_bounded() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(per_second=1, burst=2, clock=clock, max_keys=100)
    for n in range(1000):
        clock.now = n * 10.0  # every earlier bucket has refilled
        limiter.try_acquire(n)
    assert len(limiter) <= 100


def test_bucket_memory_stays_bounded_when_every_key_is_busy() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(per_second=0.001, burst=1, clock=clock, max_keys=100)
    for n in range(10_000):  # nothing refills: no bucket is ever stale
        assert limiter.try_acquire(n)
    assert len(limiter) == 100
    assert not limiter.try_acquire(9_999)  # the recent keys are still limited


def test_a_key_in_use_is_not_the_one_dropped_to_make_room() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(per_second=0.001, burst=1, clock=clock, max_keys=3)
    limiter.try_acquire("attacker")
    limiter.try_acquire("b")
    limiter.try_acquire("c")
    assert not limiter.try_acquire("attacker")  # used again: now the most recent
    limiter.try_acquire("d")  # room is made by dropping "b", the least recently used
    assert not limiter.try_acquire("attacker")
    assert limiter.try_acquire("b")


async def test_keyed_locks_serialise_one_key_and_free_memory() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, tag: str) -> None:
        async with locks.lock(key):
            order.append(f"{tag}+")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-")

    await asyncio.gather(work("k", "a"), work("k", "b"), work("other", "c"))
    a_or_b = [o for o in order if o[0] in "ab"]
    assert a_or_b in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert order.index("c+") < order.index("a-")  # other keys run concurrently
    assert len(locks) == 0


def test_link_codes_are_typable_and_hash_the_same_however_typed() -> None:
    code = new_link_code()
    assert len(code) == 9 and code[4] == "-" and looks_like_link_code(code)
    assert hash_link_code(code) == hash_link_code(code.lower().replace("-", " "))
    assert not looks_like_link_code("0000-OOOO")  # look-alikes are not in the alphabet
    assert len({new_link_code() for _ in range(200)}) == 200


async def test_keyed_locks_hand_a_key_to_its_waiters_in_arrival_order() -> None:
    """The messages of one conversation are answered in the order they came."""
    locks = KeyedLocks()
    order: list[int] = []

    async def work(n: int) -> None:
        async with locks.lock("k"):
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(work(n) for n in range(6)))
    assert order == list(range(6))
    assert len(locks) == 0


async def test_keyed_locks_survive_a_waiter_cancelled_while_waiting() -> None:
    locks = KeyedLocks()
    await locks.acquire("k")
    waiter = asyncio.create_task(locks.acquire("k"))
    second = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    locks.release("k")  # handed to the second waiter: the cancelled one is skipped
    await asyncio.wait_for(second, 1)
    assert waiter.cancelled()
    locks.release("k")
    assert len(locks) == 0


async def test_keyed_locks_pass_on_a_key_handed_to_a_waiter_cancelled_before_it_ran() -> None:
    locks = KeyedLocks()
    await locks.acquire("k")
    waiter = asyncio.create_task(locks.acquire("k"))
    after = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    locks.release("k")  # handed to ``waiter``, which has not run yet...
    waiter.cancel()  # ...and is cancelled: the key must go on to ``after``
    await asyncio.wait_for(after, 1)
    assert waiter.cancelled()
    locks.release("k")
    assert len(locks) == 0


async def test_held_locks_release_every_key_the_last_taken_first() -> None:
    speakers, conversations = KeyedLocks(), KeyedLocks()
    held = HeldLocks()
    await held.take(speakers, "ann")
    await held.take(conversations, "ann/ada")
    waiting = asyncio.create_task(conversations.acquire("ann/ada"))
    await asyncio.sleep(0)
    assert not waiting.done()
    held.release()
    await asyncio.wait_for(waiting, 1)
    conversations.release("ann/ada")
    assert len(speakers) == len(conversations) == 0
