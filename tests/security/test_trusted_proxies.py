"""Behind a load balancer: the client's address comes from the trusted proxy's header.

Every browser in these tests connects from loopback, which plays the load balancer
(``WEB__TRUSTED_PROXIES=127.0.0.0/8``) and says who the client is in
``X-Forwarded-For``; before the fix, every client was the balancer and one attacker's
failed logins and sign-ups locked everybody out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.web import WebAdapter, create_app
from adapters.web.proxies import TrustedProxies
from auth import TEST_PARAMS, AccountService, LoginThrottle, PasswordHasher
from auth.throttle import LOGIN_LIMITS, LOGIN_WINDOW
from bot.app_settings import load_settings
from bot.config import WebSettings
from bot.engine import Engine
from bot.errors import ConfigError
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.web_site import PASSWORD, Browser, MakeSite, Site

BEHIND_LOOPBACK = WebSettings(trusted_proxies=("127.0.0.0/8",))


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("10.0.0.5", "203.0.113.7", "203.0.113.7", id="one-hop"),
        pytest.param("10.0.0.5", "1.2.3.4, 203.0.113.7", "203.0.113.7", id="spoofed-left-ignored"),
        pytest.param("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7", id="two-proxies"),
        pytest.param("198.51.100.1", "203.0.113.7", "198.51.100.1", id="untrusted-peer"),
        pytest.param("10.0.0.5", "", "10.0.0.5", id="no-header"),
        pytest.param("10.0.0.5", "junk, 203.0.113.7", "203.0.113.7", id="junk-left"),
        pytest.param("10.0.0.5", "203.0.113.7, junk", "10.0.0.5", id="junk-right"),
        pytest.param("10.0.0.5", "10.0.0.7, 10.0.0.8", "10.0.0.7", id="all-trusted"),
        pytest.param("10.0.0.5", "2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param("10.0.0.5", "203.0.113.7:4711", "203.0.113.7", id="with-port"),
    ],
)
def test_the_right_most_untrusted_address_is_the_client(
    peer: str, forwarded: str, expected: str
) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    sent = headers(X_Forwarded_For=forwarded) if forwarded else headers()
    assert proxies.client_address(peer, sent) == expected


def test_forwarded_header_is_read_only_when_configured() -> None:
    rfc = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    sent = headers(
        Forwarded='for=1.2.3.4, for="[2001:db8::7]:80";proto=https',
        X_Forwarded_For="198.51.100.9",
    )
    assert rfc.client_address("10.0.0.5", sent) == "2001:db8::7"
    xff = TrustedProxies(["10.0.0.0/8"])
    assert xff.client_address("10.0.0.5", sent) == "198.51.100.9"


def test_the_setting_takes_addresses_and_networks() -> None:
    env = {"PERSONABRIDGE_WEB__TRUSTED_PROXIES": "10.0.0.0/16, 192.0.2.1, fd00::/8"}
    assert load_settings(env, use_dotenv=False).web.trusted_proxies == (
        "10.0.0.0/16",
        "192.0.2.1",
        "fd00::/8",
    )
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({"PERSONABRIDGE_WEB__TRUSTED_PROXIES": "10.0.0.0/8, alb"}, use_dotenv=False)


@pytest.fixture
def throttle_clock() -> Clock:
    return Clock(1_000.0)


@pytest.fixture
def throttled_accounts(store: SqliteStore, clock: Clock, throttle_clock: Clock) -> AccountService:
    throttle = LoginThrottle(limits=LOGIN_LIMITS, window=LOGIN_WINDOW, clock=throttle_clock)
    return AccountService(store, hasher=PasswordHasher(TEST_PARAMS), throttle=throttle, clock=clock)


@pytest.fixture
async def proxied_site(
    make_site: MakeSite, throttled_accounts: AccountService
) -> AsyncIterator[Site]:
    async with make_site(accounts=throttled_accounts, settings=BEHIND_LOOPBACK) as site:
        yield site


async def test_one_attacker_behind_the_balancer_does_not_lock_others_out(
    proxied_site: Site,
) -> None:
    owner = proxied_site.browser()
    await owner.sign_up("alice")
    await owner.log_out()
    attacker = proxied_site.browser()
    limit = LOGIN_LIMITS["address"]
    for n in range(limit):
        reply = await attacker.submit(
            "/login",
            {"username": f"invented{n}", "password": "wrong password"},
            headers={"X-Forwarded-For": "203.0.113.66"},
        )
        assert reply.status == 401
    # the attacker's own address is now limited, even behind the same balancer...
    blocked = await attacker.submit(
        "/login",
        {"username": "invented-again", "password": "wrong password"},
        headers={"X-Forwarded-For": "203.0.113.66"},
    )
    assert blocked.status == 429
    # ...and so is the attacker lying about its address to the left of what the balancer saw
    lying = await attacker.submit(
        "/login",
        {"username": "invented-again", "password": "wrong password"},
        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.66"},
    )
    assert lying.status == 429
    # another client behind the same balancer logs in
    other = proxied_site.browser()
    ok = await other.submit(
        "/login",
        {"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.20"},
    )
    assert ok.status == 303


async def test_sign_ups_are_limited_per_client_not_per_balancer(proxied_site: Site) -> None:
    statuses = []
    for n in range(25):
        browser = proxied_site.browser()
        reply = await browser.submit(
            "/signup",
            {"username": f"user{n}", "password": PASSWORD, "confirm": PASSWORD},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
        )
        statuses.append(reply.status)
    assert statuses == [303] * 25


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    make_site: MakeSite, throttled_accounts: AccountService
) -> None:
    settings = WebSettings(trusted_proxies=("10.0.0.0/8",))  # loopback is not trusted
    async with make_site(accounts=throttled_accounts, settings=settings) as site:
        attacker = site.browser()
        limit = LOGIN_LIMITS["address"]
        statuses = []
        for n in range(limit + 1):
            reply = await attacker.submit(
                "/login",
                {"username": f"invented{n}", "password": "wrong password"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            statuses.append(reply.status)
        assert statuses == [401] * limit + [429]


async def test_the_access_log_names_the_client(
    store: SqliteStore,
    engine: Engine,
    accounts: AccountService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = BEHIND_LOOPBACK.model_copy(update={"port": 0})
    app = create_app(engine, accounts, upkeep=store, settings=settings)
    adapter = WebAdapter(app, access_log=True, shutdown_timeout=1.0)
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with adapter, aiohttp.ClientSession() as session:
            browser = Browser(adapter.url, session)
            reply = await browser.get("/healthz", headers={"X-Forwarded-For": "203.0.113.99"})
            assert reply.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any(line.startswith("203.0.113.99 ") for line in lines), lines
