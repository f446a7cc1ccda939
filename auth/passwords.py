"""Password hashing: argon2id, always off the event loop.

One hash costs tens of milliseconds of CPU and memory by design, so every hash and
verify runs in a worker thread (``asyncio.to_thread``; argon2-cffi releases the GIL
while it works), and a semaphore bounds how many run at once: a flood of logins then
queues here instead of filling the default thread pool that other work shares.

:meth:`PasswordHasher.verify_unknown` verifies against a dummy hash made with the
current parameters, so a login for a name that does not exist costs what a wrong
password costs and timing does not tell the two apart.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost parameters. The default is OWASP's recommended minimum
    (m=19 MiB, t=2, p=1), about 25 ms per hash on the project's reference machine."""

    time_cost: int = 2
    memory_cost_kib: int = 19 * 1024
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16


OWASP_PARAMS = Argon2Params()
#: Cheap parameters for tests only: never for real passwords.
TEST_PARAMS = Argon2Params(time_cost=1, memory_cost_kib=64, parallelism=1)


class PasswordHasher:
    """Hashes and verifies passwords with argon2id in worker threads."""

    def __init__(self, params: Argon2Params = OWASP_PARAMS, *, concurrency: int | None = None):
        self.params = params
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost_kib,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency or max(1, os.cpu_count() or 1))
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when the password matches; False on a mismatch or a damaged hash."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, password)

    async def verify_unknown(self, password: str) -> bool:
        """Spend the time of a real verify, for a username that does not exist."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
