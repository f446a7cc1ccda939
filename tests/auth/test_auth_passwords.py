"""argon2id hashing: OWASP parameters, verification, rehash, off the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from auth import OWASP_PARAMS, TEST_PARAMS, Argon2Params, PasswordHasher


async def test_default_parameters_are_owasps_argon2id() -> None:
    hasher = PasswordHasher()
    assert hasher.params == OWASP_PARAMS
    encoded = await hasher.hash("a long enough passphrase")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await hasher.verify(encoded, "a long enough passphrase")


@pytest.mark.parametrize(
    ("stored", "password", "ok"),
    [
        pytest.param("right", "right horse battery", True, id="right"),
        pytest.param("right", "wrong horse battery", False, id="wrong"),
        pytest.param("damaged", "right horse battery", False, id="damaged-hash"),
    ],
)
async def test_verify(stored: str, password: str, ok: bool) -> None:
    hasher = PasswordHasher(TEST_PARAMS)
    encoded = await hasher.hash("right horse battery")
    if stored == "damaged":
        encoded = encoded[:-10]
    assert await hasher.verify(encoded, password) is ok


async def test_a_hash_of_other_parameters_needs_a_rehash() -> None:
    old = await PasswordHasher(TEST_PARAMS).hash("right horse battery")
    assert not PasswordHasher(TEST_PARAMS).needs_rehash(old)
    assert PasswordHasher(Argon2Params(time_cost=2, memory_cost_kib=128)).needs_rehash(old)


async def test_unknown_users_cost_a_verify_too() -> None:
    hasher = PasswordHasher(TEST_PARAMS)
    assert await hasher.verify_unknown("anything at all") is False


async def test_hashing_does_not_block_the_event_loop() -> None:
    """While a deliberately slow hash runs, the loop keeps ticking every few ms."""
    hasher = PasswordHasher(Argon2Params(time_cost=3, memory_cost_kib=64 * 1024))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await hasher.hash("a long enough passphrase")
    took = time.perf_counter() - started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert took > 0.03, "the hash is slow enough to notice a blocked loop"
    assert len(gaps) >= 5
    assert max(gaps) < took / 2
