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

from auth import devices
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
from bot.link_consent import platform_name
from bot.messages import Identity
from bot.notices import AccountNotices
from bot.store.base import Account, AuthStore, LinkedIdentity, Notice

log = logging.getLogger(__name__)


class AccountService:
    """Accounts, passwords and web sessions over an :class:`~bot.store.base.AuthStore`."""

    def __init__(
        self,
        store: AuthStore,
        *,
        hasher: PasswordHasher | None = None,
        throttle: LoginThrottle | None = None,
        session_ttl: float = SESSION_TTL,
        session_cache_seconds: float = SESSION_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
        notices: AccountNotices | None = None,
        max_live_codes: int = linking.MAX_LIVE_CODES,
    ):
        self.store = store
        #: Where the owner is told of links and unlinks (the engine's, in the app).
        self.notices = notices or AccountNotices(store, clock=clock)
        self._max_live_codes = max_live_codes
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
        self,
        username: str,
        password: str,
        *,
        address: str,
        replacing: str | None = None,
        device: str | None = None,
    ) -> tuple[Account, NewSession]:
        """Check the password and start a new session (revoking ``replacing``).

        ``device`` is the browser's device token (see :mod:`auth.devices`), if any.
        Raises LoginFailed (the same for an unknown name and a wrong password) or
        LoginThrottled."""
        account = await self.verify_password(username, password, address=address, device=device)
        session = await self.sessions.start(account.id, replacing=replacing)
        log.info("account %s logged in", account.id)
        return account, session

    def device_token(self, account: Account) -> str:
        """A token for the browser that just proved it knows the account's password."""
        return devices.device_token(account, self._clock())

    async def verify_password(
        self, username: str, password: str, *, address: str, device: str | None = None
    ) -> Account:
        """The account when the password is right, under the login throttle.

        A browser holding a device token of the account is throttled on that device
        only: strangers' failures (which fill the account's and their addresses' limits)
        never lock the owner's own browsers out."""
        name = username.strip()
        account = await self._find(name)
        known = devices.device_id(device, account, self._clock()) if account else None
        if known is not None:
            keys: tuple[str, ...] = (f"device:{known}",)
        else:
            keys = (f"account:{name.casefold()[: USERNAME_MAX * 2]}", f"address:{address}")
        with self.throttle.attempt(keys) as fail:
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

    async def log_out_elsewhere(self, account_id: str, current: str | None) -> int:
        """End every session of the account but ``current`` (this browser's token);
        how many ended."""
        ended = await self.sessions.end_others(account_id, current)
        log.info("account %s: %d other sessions ended", account_id, ended)
        return ended

    async def change_password(
        self,
        account: Account,
        current_password: str,
        new_password: str,
        *,
        address: str,
        device: str | None = None,
        replacing: str | None = None,
    ) -> tuple[Account, NewSession]:
        """Check the current password (throttled like a login), apply the sign-up
        rules to the new one, store its hash, end every session of the account and
        start a new one for this browser. Raises LoginFailed, LoginThrottled or
        WeakPassword; nothing changes unless it succeeds."""
        await self.verify_password(
            account.username, current_password, address=address, device=device
        )
        normal = check_password(new_password, username=account.username)
        password_hash = await self.hasher.hash(normal)
        await self.store.set_password_hash(account.id, password_hash)
        await self.sessions.end_others(account.id, None)  # this browser's too: a new one
        session = await self.sessions.start(account.id, replacing=replacing)
        log.info("account %s: password changed, other sessions ended", account.id)
        changed = Account(account.id, account.username, password_hash, account.created_at)
        return changed, session

    # -- linking --------------------------------------------------------------------------

    async def create_link_code(self, account_id: str) -> str:
        """A one-time code the user sends to the bot as ``/link CODE``; the account's
        oldest code goes when it holds the most it may."""
        return await linking.create_link_code(
            self.store, account_id, self._clock(), max_live=self._max_live_codes
        )

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
        await self.notices.tell(
            account_id,
            f"The {platform_name(link.platform)} account {link.display_name} "
            f"(id {link.user_id}) was unlinked from your account on the account page.",
        )
        return True

    async def notices_of(self, account_id: str) -> list[Notice]:
        """What the account's owner was told lately (links and unlinks), newest first."""
        return await self.notices.recent(account_id)

    # -- your data ------------------------------------------------------------------------

    async def export(self, account: Account) -> dict[str, Any]:
        """Everything stored about the account except its password hash."""
        return await export_account(self.store, account, self._clock())

    async def delete_account(
        self, account: Account, password: str, *, address: str, device: str | None = None
    ) -> None:
        """Delete the account and all its data, after checking its password (throttled
        like a login, so a stolen session cannot be used to guess it)."""
        await self.verify_password(account.username, password, address=address, device=device)
        await self.store.delete_account(account.id)
        self.sessions.cache.drop_account(account.id)
        log.info("account %s deleted", account.id)
