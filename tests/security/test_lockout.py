"""Strangers' wrong passwords never lock the owner out; guessing stays limited.

The owner's browser got a device cookie when it last logged in (``auth.devices``): its
logins are counted against that device only. Everyone else is counted against the
account (and their address), as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from auth import TEST_PARAMS, AccountService, LoginThrottle, PasswordHasher
from auth.devices import device_id, device_token
from auth.throttle import LOGIN_LIMITS, LOGIN_WINDOW
from bot.store.base import Account
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.web_site import PASSWORD, Browser, MakeSite, Site

DEVICE = "pb_device"


@pytest.fixture
def throttle_clock() -> Clock:
    return Clock(1_000.0)


@pytest.fixture
async def login_site(
    make_site: MakeSite, store: SqliteStore, clock: Clock, throttle_clock: Clock
) -> AsyncIterator[Site]:
    throttle = LoginThrottle(limits=LOGIN_LIMITS, window=LOGIN_WINDOW, clock=throttle_clock)
    accounts = AccountService(
        store, hasher=PasswordHasher(TEST_PARAMS), throttle=throttle, clock=clock
    )
    async with make_site(accounts=accounts) as site:
        yield site


async def guesses(browser: Browser, username: str, count: int) -> list[int]:
    return [(await browser.log_in(username, f"wrong guess {n}")).status for n in range(count)]


async def test_an_attacker_cannot_lock_the_owner_out(login_site: Site) -> None:
    owner = login_site.browser()
    await owner.sign_up("alice")
    assert DEVICE in owner.cookies
    await owner.log_out()
    attacker = login_site.browser_from("127.0.0.2")
    limit = LOGIN_LIMITS["account"]
    assert await guesses(attacker, "alice", limit + 2) == [401] * limit + [429] * 2
    # the attacker cannot get in even with the right password now...
    assert (await attacker.log_in("alice", PASSWORD)).status == 429
    # ...but the owner's browser, which logged in before, still can
    assert (await owner.log_in("alice", PASSWORD)).status == 303
    assert await owner.logged_in_as() == "alice"


async def test_guessing_is_still_limited_for_strangers_and_stolen_cookies(
    login_site: Site,
) -> None:
    owner = login_site.browser()
    await owner.sign_up("alice")
    await owner.log_out()
    limit = LOGIN_LIMITS["account"]
    # a stranger's own device cookie (for their own account) buys nothing against alice
    mallory = login_site.browser_from("127.0.0.3")
    await mallory.sign_up("mallory")
    await mallory.log_out()
    assert await guesses(mallory, "alice", limit + 1) == [401] * limit + [429]
    # a forged cookie naming alice neither
    forger = login_site.browser_from("127.0.0.4")
    forger.cookies[DEVICE] = owner.cookies[DEVICE][:-4] + "0000"
    assert (await forger.log_in("alice", "wrong guess")).status == 429
    # the owner's own device cookie (a stolen laptop) is limited per device too
    device = login_site.browser_from("127.0.0.5")
    device.cookies[DEVICE] = owner.cookies[DEVICE]
    device_limit = LOGIN_LIMITS["device"]
    assert await guesses(device, "alice", device_limit + 1) == [401] * device_limit + [429]


async def test_the_device_cookie_is_refused_after_a_password_change_or_expiry() -> None:
    account = Account("a1b2c3d4e5f60718", "alice", "$argon2id$old", 0.0)
    token = device_token(account, now=100.0, ttl=50.0)
    assert device_id(token, account, now=120.0) is not None
    assert device_id(token, account, now=151.0) is None, "expired"
    changed = Account(account.id, account.username, "$argon2id$new", 0.0)
    assert device_id(token, changed, now=120.0) is None, "another password hash"
    other = Account("ffffffffffffffff", "bob", account.password_hash, 0.0)
    assert device_id(token, other, now=120.0) is None, "another account"
    assert device_id("junk", account, now=120.0) is None
