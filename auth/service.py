"""The accounts service: sign up, log in and out, link codes, export, delete.

The one place where account rules meet the store. Front ends (the web adapter) call
it with what the user typed and show the :class:`~auth.errors.AuthError` messages it
raises; they never see a password hash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from auth.errors import InvalidUsername, LoginFailed
from auth.export import export_account
from auth.passwords import PasswordHasher
from auth.rules import (
    PASSWORD_MAX,
    USERNAME_MAX,
    check_password,
    check_username,
    normalise_password,
)
from auth.sessions import SESSION_CACHE_SECONDS, SESSION_TTL, NewSession, SessionManager
from auth.throttle import LOGIN_LIMITS, LoginThrottle
from bot import linking
from bot.errors import UsernameTaken
from bot.messages import Identity
from bot.store.base import Account, LinkedIdentity, Store

log = logging.getLogger(__name__)


class AccountService:
    """Accounts, passwords and web sessions over a :class:`~bot.store.base.Store`."""

    def __init__(
        self,
        store: Store,
        *,
        hasher: PasswordHasher | None = None,
        throttle: LoginThrottle | None = None,
        session_ttl: float = SESSION_TTL,
        session_cache_seconds: float = SESSION_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.throttle = throttle or LoginThrottle(limits=LOGIN_LIMITS)
        self.sessions = SessionManager(
            store, ttl=session_ttl, clock=clock, cache_seconds=session_cache_seconds
        )
        self._clock = clock

    # -- sign up, log in, log out ---------------------------------------------------------

    async def sign_up(self, username: str, password: str) -> Account:
        """Create an account. Raises InvalidUsername, WeakPassword or UsernameTaken."""
        name = check_username(username)
        normal = check_password(password, username=name)
        if await self.store.find_account(name) is not None:
            # Checked first only to skip a pointless hash; the store is what guarantees it.
            raise UsernameTaken(f"the username {name!r} is taken")
        account = await self.store.create_account(
            name, await self.hasher.hash(normal), self._clock()
        )
        log.info("account %s created", account.id)
        return account

    async def log_in(
        self, username: str, password: str, *, address: str, replacing: str | None = None
    ) -> tuple[Account, NewSession]:
        """Check the password and start a new session (revoking ``replacing``).

        Raises LoginFailed (the same for an unknown name and a wrong password) or
        LoginThrottled."""
        account = await self.verify_password(username, password, address=address)
        session = await self.sessions.start(account.id, replacing=replacing)
        log.info("account %s logged in", account.id)
        return account, session

    async def verify_password(self, username: str, password: str, *, address: str) -> Account:
        """The account when the password is right, under the login throttle."""
        name = username.strip()
        keys = (f"account:{name.casefold()[: USERNAME_MAX * 2]}", f"address:{address}")
        with self.throttle.attempt(keys) as fail:
            account = await self._find(name)
            normal = normalise_password(password[: PASSWORD_MAX * 4])
            if account is None:
                await self.hasher.verify_unknown(normal)
                fail()
                raise LoginFailed()
            if not await self.hasher.verify(account.password_hash, normal):
                fail()
                raise LoginFailed()
        if self.hasher.needs_rehash(account.password_hash):
            await self.store.set_password_hash(account.id, await self.hasher.hash(normal))
            log.info("account %s: password rehashed with the current parameters", account.id)
        return account

    async def _find(self, name: str) -> Account | None:
        try:
            check_username(name)
        except InvalidUsername:  # an impossible name has no account: skip the store
            return None
        return await self.store.find_account(name)

    async def session_account(self, token: str | None) -> Account | None:
        """The account of a live session token, or None."""
        return await self.sessions.account(token)

    async def log_out(self, token: str) -> None:
        await self.sessions.end(token)

    # -- linking --------------------------------------------------------------------------

    async def create_link_code(self, account_id: str) -> str:
        """A one-time code the user sends to the bot as ``/link CODE``."""
        return await linking.create_link_code(self.store, account_id, self._clock())

    async def identities(self, account_id: str) -> list[LinkedIdentity]:
        return await self.store.list_identities(account_id)

    async def unlink(self, account_id: str, platform: str, user_id: str) -> bool:
        """Unlink the identity if it belongs to this account; False when it does not."""
        identity = Identity(platform, user_id)
        link = await self.store.get_identity(identity)
        if link is None or link.account_id != account_id:
            return False
        await self.store.unlink_identity(identity)
        log.info("account %s: unlinked a %s identity", account_id, platform)
        return True

    # -- your data ------------------------------------------------------------------------

    async def export(self, account: Account) -> dict[str, Any]:
        """Everything stored about the account except its password hash."""
        return await export_account(self.store, account, self._clock())

    async def delete_account(self, account: Account, password: str, *, address: str) -> None:
        """Delete the account and all its data, after checking its password (throttled
        like a login, so a stolen session cannot be used to guess it)."""
        await self.verify_password(account.username, password, address=address)
        await self.store.delete_account(account.id)
        self.sessions.cache.drop_account(account.id)
        log.info("account %s deleted", account.id)
