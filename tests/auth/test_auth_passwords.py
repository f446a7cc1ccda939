"""argon2id hashing: OWASP parameters, verification, rehash, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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


class _WaitsForTheLoop:
    """Stands in for argon2's hasher: its hash finishes only once the event loop has
    run a callback, which cannot happen if the hash itself blocks the loop."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.loop_ran = threading.Event()

    def hash(self, password: str) -> str:
        if not self.loop_ran.wait(timeout=30):
            raise AssertionError("the event loop did not run while the hash was working")
        return str(self.real.hash(password))


async def test_hashing_does_not_block_the_event_loop() -> None:
    """The hash works in a thread: while it runs, the loop runs other callbacks."""
    hasher = PasswordHasher(TEST_PARAMS)
    gate = _WaitsForTheLoop(hasher._hasher)
    hasher._hasher = gate  # type: ignore[assignment]
    asyncio.get_running_loop().call_soon(gate.loop_ran.set)
    hashed = await asyncio.wait_for(hasher.hash("a long enough passphrase"), 60)
    assert gate.loop_ran.is_set() and hashed.startswith("$argon2id$")
