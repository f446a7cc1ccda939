"""Web sessions: a random token in the browser's cookie, only its hash in the store.

Someone who reads the store (a backup, a leaked table) learns no usable token. Tokens
come from :mod:`secrets` (256 bits); a session lasts :data:`SESSION_TTL` from login,
is replaced by a new one on every login (no session fixation) and deleted on logout.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from auth.session_cache import SessionCache
from bot.store.base import Account, AuthStore

SESSION_TTL = 14 * 24 * 3600.0
#: Seconds a session checked live is trusted without the store (auth.session_cache):
#: off unless asked for (the app passes WEB__SESSION_CACHE_SECONDS, 5 s by default).
SESSION_CACHE_SECONDS = 0.0
_TOKEN_BYTES = 32
#: What a token we issued can look like (``secrets.token_urlsafe``: 43 characters).
#: Anything else is junk from the browser (far too long, or not even valid UTF-8: the
#: server decodes such cookie bytes to surrogates that cannot be hashed), never a
#: session, and is not worth a store lookup.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible_token(token: str | None) -> TypeGuard[str]:
    """Whether ``token`` has the shape of a session token we could have issued."""
    return token is not None and _TOKEN_SHAPE.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just started: the token goes into the cookie, once."""

    token: str
    account_id: str
    expires_at: float


class SessionManager:
    """Starts, resolves and ends web sessions in the store."""

    def __init__(
        self,
        store: AuthStore,
        *,
        ttl: float = SESSION_TTL,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = SESSION_CACHE_SECONDS,
    ):
        self._store = store
        self.ttl = ttl
        self._clock = clock
        self.cache = SessionCache(cache_seconds)

    async def start(self, account_id: str, *, replacing: str | None = None) -> NewSession:
        """A new session for the account; ``replacing`` (the token the browser had)
        is revoked, so a token planted before login is worthless after it."""
        if replacing:
            await self.end(replacing)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        expires_at = self._clock() + self.ttl
        await self._store.put_web_session(hash_token(token), account_id, expires_at)
        return NewSession(token, account_id, expires_at)

    async def account(self, token: str | None) -> Account | None:
        """The account the token is a live session of, or None."""
        if not plausible_token(token):
            return None
        token_hash, now = hash_token(token), self._clock()
        known = self.cache.get(token_hash, now)
        if known is not None:
            return known
        session = await self._store.get_web_session(token_hash, now)
        if session is None:
            return None
        account = await self._store.get_account(session.account_id)
        if account is not None:
            self.cache.put(token_hash, account, now, session.expires_at)
        return account

    async def end(self, token: str) -> None:
        if plausible_token(token):
            self.cache.drop(hash_token(token))
            await self._store.delete_web_session(hash_token(token))

    async def end_others(self, account_id: str, token: str | None) -> int:
        """End every session of the account except ``token``'s (all when None)."""
        keep = hash_token(token) if plausible_token(token) else None
        return await self._store.delete_web_sessions(account_id, keep=keep)
