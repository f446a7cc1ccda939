"""Guessing: passwords on the web, link codes on Telegram and Discord.

Passwords: failed logins are limited per account name (whatever the address) and per
client address (whatever the names), with the numbers production uses
(:data:`auth.throttle.LOGIN_LIMITS` per :data:`~auth.throttle.LOGIN_WINDOW`), also for
guesses sent all at once and for the password check of "delete my account".

Link codes: ``/link CODE`` is limited per identity (whatever the chat it is sent
from); an attacker with many identities gets that many times the guesses, so the
code space must make even that hopeless within a code's lifetime. The figures are
measured through the real engine and adapters, not copied from the code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.discord import INTERACTIONS_PATH
from auth import TEST_PARAMS, AccountService, LoginThrottle, PasswordHasher
from auth.throttle import LOGIN_LIMITS, LOGIN_WINDOW
from bot.engine import Engine
from bot.linking import LINK_CODE_TTL, looks_like_link_code, new_link_code
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.discord_harness import fast_adapter, slash, user
from tests.support.discord_server import FakeDiscord
from tests.support.telegram_harness import Chat, Person, polling
from tests.support.telegram_server import FakeBotApi
from tests.support.web_site import (
    DISCORD_PUBLIC_KEY,
    PASSWORD,
    Browser,
    MakeSite,
    Site,
    build_engine,
    db_rows,
    discord_signed,
)

UNKNOWN = "unknown, used or expired"
TOO_MANY = "Too many link attempts"
LINKED = "Linked:"

# -- passwords --------------------------------------------------------------------------


@pytest.fixture
def throttle_clock() -> Clock:
    return Clock(1_000.0)


@pytest.fixture
def throttled_accounts(store: SqliteStore, clock: Clock, throttle_clock: Clock) -> AccountService:
    """The production throttle (its limits and window), on a clock the test moves."""
    throttle = LoginThrottle(limits=LOGIN_LIMITS, window=LOGIN_WINDOW, clock=throttle_clock)
    return AccountService(store, hasher=PasswordHasher(TEST_PARAMS), throttle=throttle, clock=clock)


@pytest.fixture
async def login_site(
    make_site: MakeSite, throttled_accounts: AccountService
) -> AsyncIterator[Site]:
    async with make_site(accounts=throttled_accounts) as site:
        yield site


def test_the_tests_use_the_numbers_production_uses(store: SqliteStore) -> None:
    production = AccountService(store).throttle
    assert production.limit_for("account:alice") == LOGIN_LIMITS["account"]
    assert production.limit_for("address:10.0.0.1") == LOGIN_LIMITS["address"]
    assert production.window == LOGIN_WINDOW
    # Sane for people (a few typos) and hopeless for guessing: at most this many
    # guesses a day against one account.
    per_day = LOGIN_LIMITS["account"] * 24 * 3600 / LOGIN_WINDOW
    assert LOGIN_LIMITS["account"] >= 5 and per_day <= 1_000


async def wrong_guesses(browser: Browser, username: str, count: int) -> list[int]:
    return [(await browser.log_in(username, f"wrong guess {n}")).status for n in range(count)]


async def test_guessing_one_accounts_password_is_limited_then_recovers(
    login_site: Site, throttle_clock: Clock
) -> None:
    limit = LOGIN_LIMITS["account"]
    await login_site.browser().sign_up("alice")
    attacker = login_site.browser_from("127.0.0.2")
    assert await wrong_guesses(attacker, "alice", limit) == [401] * limit

    refused = await attacker.log_in("alice", PASSWORD)  # even the right password now
    assert refused.status == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= LOGIN_WINDOW
    assert "Too many failed attempts" in refused.text
    assert "pb_session" not in attacker.cookies

    throttle_clock.advance(LOGIN_WINDOW + 1)
    assert (await login_site.browser_from("127.0.0.3").log_in("alice")).status == 303


async def test_rotating_addresses_does_not_reset_the_per_account_limit(login_site: Site) -> None:
    """A botnet: every guess from another address."""
    limit = LOGIN_LIMITS["account"]
    await login_site.browser().sign_up("alice")
    statuses = []
    for n in range(limit + 3):
        bot = login_site.browser_from(f"127.0.1.{n + 1}")
        statuses.append((await bot.log_in("alice", f"guess {n}")).status)
    assert statuses == [401] * limit + [429] * 3
    # Unknown names are limited alike: the throttle does not tell which names exist.
    unknown = [
        (await login_site.browser_from(f"127.0.2.{n + 1}").log_in("nobody", "x" * 12)).status
        for n in range(limit + 1)
    ]
    assert unknown == [401] * limit + [429]


async def test_one_address_trying_many_accounts_is_limited(login_site: Site) -> None:
    limit = LOGIN_LIMITS["address"]
    per_name = LOGIN_LIMITS["account"] - 1
    attacker = login_site.browser_from("127.0.0.4")
    statuses = []
    for n in range(limit):
        name = f"victim{n // per_name}"
        # A forged X-Forwarded-For does not give a new address.
        forwarded = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"}
        reply = await attacker.submit(
            "/login", {"username": name, "password": f"guess {n}"}, headers=forwarded
        )
        statuses.append(reply.status)
    assert statuses == [401] * limit
    assert (await attacker.log_in("someone-new", "guess")).status == 429
    await login_site.browser().sign_up("alice")
    elsewhere = login_site.browser_from("127.0.0.5")
    assert (await elsewhere.log_in("alice")).status == 303, "other addresses are not punished"


async def test_guesses_sent_all_at_once_do_not_slip_through(
    login_site: Site, store: SqliteStore
) -> None:
    limit = LOGIN_LIMITS["account"]
    await login_site.browser().sign_up("alice")
    attacker = login_site.browser_from("127.0.0.6")
    token = await attacker.token("/login")
    burst = 3 * limit

    async def guess(n: int) -> int:
        reply = await attacker.post(
            "/login",
            data={"csrf_token": token, "username": "alice", "password": f"guess {n}"},
            headers={"Origin": attacker.origin},
        )
        return reply.status

    statuses = await asyncio.gather(*(guess(n) for n in range(burst)))
    assert statuses.count(401) <= limit, "no more passwords checked than the limit"
    assert statuses.count(429) >= burst - limit
    assert set(statuses) <= {401, 429}


async def test_the_password_check_of_account_deletion_is_limited_too(
    login_site: Site, db_path: Path
) -> None:
    """A stolen session must not become a password oracle."""
    limit = LOGIN_LIMITS["account"]
    thief = login_site.browser_from("127.0.0.7")
    await thief.sign_up("alice")
    statuses = [
        (
            await thief.submit("/account/delete", {"password": f"guess {n}"}, token_from="/account")
        ).status
        for n in range(limit + 1)
    ]
    assert statuses == [403] * limit + [429]
    refused = await thief.submit("/account/delete", {"password": PASSWORD}, token_from="/account")
    assert refused.status == 429
    assert db_rows(db_path, "SELECT username FROM accounts") == [("alice",)]


# -- link codes -------------------------------------------------------------------------


def code_space() -> tuple[int, int]:
    """(alphabet size, length) of the codes the app makes, as observed, checked
    against what ``/link`` accepts."""
    codes = [new_link_code() for _ in range(3000)]
    raw = {c.replace("-", "") for c in codes}
    alphabet = set("".join(raw))
    lengths = {len(c) for c in raw}
    assert len(lengths) == 1
    (length,) = lengths
    assert all(looks_like_link_code(c) for c in codes)
    accepted = {ch for ch in map(chr, range(32, 127)) if looks_like_link_code(ch * length)}
    assert {ch.upper() for ch in accepted} == alphabet, "every accepted symbol is used"
    return len(alphabet), length


@dataclass
class DiscordLink:
    """``/link`` over the Discord interactions endpoint of the real app."""

    site: Site
    fake: FakeDiscord

    async def link(self, user_id: int, code: str, *, guild: bool = False) -> str:
        """``/link code:CODE``, confirmed (``/link code:confirm``) when it asks to be;
        the last answer."""
        answer = await self._slash_link(user_id, code, guild=guild)
        if "Nothing is linked yet" in answer:
            answer = await self._slash_link(user_id, "confirm", guild=guild)
        return answer

    async def _slash_link(self, user_id: int, code: str, *, guild: bool) -> str:
        person = user(user_id, f"user{user_id}")
        payload = slash("link", code=code, guild=guild, person=person)
        body = json.dumps(payload).encode()
        reply = await self.site.browser().post(
            INTERACTIONS_PATH, data=body, headers=discord_signed(body)
        )
        assert reply.status == 200, reply.text

        def answered() -> str | None:
            shown = self.fake.transcript(token=payload["token"])
            return shown[0] if shown and shown[0] else None

        text: str = await self.fake.wait_for(answered, timeout=10)
        return text


@pytest.fixture
def monotonic() -> Clock:
    """The engine's rate-limit clock, moved by the tests."""
    return Clock(5_000.0)


@pytest.fixture
def link_engine(store: SqliteStore, clock: Clock, monotonic: Clock) -> Engine:
    return build_engine(store, clock=clock, monotonic=monotonic)


@pytest.fixture
async def discord_link(
    make_site: MakeSite, store: SqliteStore, link_engine: Engine, accounts: AccountService
) -> AsyncIterator[DiscordLink]:
    async with FakeDiscord() as fake:
        settings = fake.settings(token=None, public_key=DISCORD_PUBLIC_KEY)
        adapter = fast_adapter(link_engine, settings, events=store)
        async with (
            adapter,
            make_site(engine=link_engine, extra_routes=adapter.web_routes()) as site,
        ):
            yield DiscordLink(site, fake)


async def alices_code(site: Site, alice: Browser | None = None) -> tuple[Browser, str]:
    """Alice (signed up, unless her browser is given) gets a code on her account page."""
    if alice is None:
        alice = site.browser()
        await alice.sign_up("alice")
    page = await alice.submit("/account/link-code", {}, token_from="/account")
    start = page.text.index('id="link-code">') + len('id="link-code">')
    return alice, page.text[start : page.text.index("<", start)]


def wrong_codes(right: str) -> list[str]:
    candidates = (f"ABCD-E{a}{b}{c}" for a, b, c in itertools.product("FGHJ", "KLMN", "2345"))
    return [c for c in candidates if c != right]


async def test_link_guesses_are_limited_per_identity_on_telegram(
    make_site: MakeSite, link_engine: Engine, store: SqliteStore
) -> None:
    """Through the real Telegram adapter (polling the fake Bot API)."""
    async with make_site(engine=link_engine) as site:
        _, code = await alices_code(site)
    async with FakeBotApi() as fake, polling(link_engine, fake):
        mallory = Chat(fake, Person(31, "Mallory"))
        guesses = wrong_codes(code)
        answers = [await mallory.say(f"/link {guess}") for guess in guesses[:5]]
        assert all(UNKNOWN in a for a in answers), answers
        assert TOO_MANY in await mallory.say(f"/link {code}"), "not even the right code"
        assert TOO_MANY in await mallory.say(f"/start link-{code}"), "nor the deep link"
        owner = Chat(fake, Person(32, "Alice"))
        await owner.say(f"/link {code}")
        assert LINKED in await owner.say("/link confirm"), "refused guesses used no code"
    assert db_rows(store.path, "SELECT user_id FROM identities") == [("32",)]


async def test_switching_chats_does_not_reset_the_limit(discord_link: DiscordLink) -> None:
    """The limit belongs to the identity, not to the conversation: direct messages
    and servers count together."""
    _, code = await alices_code(discord_link.site)
    guesses = wrong_codes(code)
    answers = [
        await discord_link.link(66, guess, guild=n % 2 == 1) for n, guess in enumerate(guesses[:5])
    ]
    assert all(UNKNOWN in a for a in answers), answers
    assert TOO_MANY in await discord_link.link(66, code, guild=True)
    assert TOO_MANY in await discord_link.link(66, code, guild=False)
    assert LINKED in await discord_link.link(67, code), "the code itself is untouched"


async def test_rotating_identities_cannot_outpace_the_code_space(
    discord_link: DiscordLink, monotonic: Clock
) -> None:
    """Measure the guesses one identity gets during one code's lifetime (the limit
    refills as time passes), check that more identities add exactly that each (no
    identity gets more, and none resets another), then do the arithmetic."""
    _, code = await alices_code(discord_link.site)
    guesses = iter(wrong_codes(code))
    identities = [700, 701, 702]
    start = monotonic.now
    checked = dict.fromkeys(identities, 0)
    moments = [0.0, LINK_CODE_TTL / 3, 2 * LINK_CODE_TTL / 3, LINK_CODE_TTL]
    for moment in moments:
        monotonic.now = start + moment
        for identity in identities:
            while True:  # guess until refused, at this moment
                answer = await discord_link.link(identity, next(guesses))
                if TOO_MANY in answer:
                    break
                assert UNKNOWN in answer
                checked[identity] += 1
    per_identity = set(checked.values())
    assert len(per_identity) == 1, f"every identity gets the same: {checked}"
    (allowed,) = per_identity
    assert 1 <= allowed <= 12, allowed

    alphabet, length = code_space()
    space = alphabet**length
    # To have even odds of finding one given code before it expires, an attacker needs
    # half the space in guesses, each identity contributing `allowed` of them.
    identities_for_even_odds = math.ceil(space / 2 / allowed)
    assert identities_for_even_odds > 10**10, "more identities than people on Earth"
    # A generous botnet: a million fresh accounts, all used within one lifetime.
    odds_with_a_million = 1_000_000 * allowed / space
    assert odds_with_a_million < 1e-4, odds_with_a_million


async def test_a_code_links_once_and_expires(
    discord_link: DiscordLink, clock: Clock, store: SqliteStore
) -> None:
    alice, code = await alices_code(discord_link.site)
    assert LINKED in await discord_link.link(801, code)
    assert UNKNOWN in await discord_link.link(802, code), "single use"

    _, second = await alices_code(discord_link.site, alice)
    clock.advance(LINK_CODE_TTL + 1)
    assert UNKNOWN in await discord_link.link(803, second), "expired"

    stored = db_rows(store.path, "SELECT code_hash FROM link_codes")
    assert all(code not in repr(row) and second not in repr(row) for row in stored)
    identities = db_rows(store.path, "SELECT user_id FROM identities ORDER BY user_id")
    assert identities == [("801",)]
    assert "801" in (await alice.get("/account")).text
