"""Cross-site request forgery, on every state-changing route of the real app.

The routes are read from the app's router (with the Telegram webhook and the Discord
interactions endpoint mounted, as in production), so a route added later is attacked
too without anyone remembering to list it. Each forged request must be refused with
403 and leave the SQLite file exactly as it was; the same request with the page's
token, from this site, must get through (so the check is the token, not luck).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from adapters.discord import build_discord_adapter
from adapters.discord.settings import DiscordSettings
from adapters.telegram import TelegramAdapter
from adapters.telegram.settings import TelegramSettings
from adapters.web.csrf import CSRF_EXEMPT_ATTR, SAFE_METHODS
from adapters.web.routing import UNMATCHED
from bot.adapter import WebRoute
from bot.config import WebSettings
from bot.engine import Engine
from bot.linking import create_link_code
from bot.messages import Incoming
from bot.store.sqlite import SqliteStore
from tests.support.web_site import (
    DISCORD_PUBLIC_KEY,
    PASSWORD,
    Browser,
    MakeSite,
    Reply,
    Site,
    db_snapshot,
    discord_signed,
)

TELEGRAM_SECRET = "tg-webhook-secret_0123456789"
#: Every field any form of the app reads, with values that change something when
#: accepted (a forged delete carries the right password: only the token may stop it).
FORM = {
    "username": "mallory",
    "password": PASSWORD,
    "confirm": PASSWORD,
    "current": PASSWORD,  # the account page's password change
    "text": "forged message",
    "persona": "morrow",
    "platform": "telegram",
    "user_id": "77",
    "next": "/",
}
SIGNED_ELSEWHERE = {"/telegram/webhook", "/discord/interactions"}


def platform_routes(engine: Engine, store: SqliteStore) -> list[WebRoute]:
    """The routes the Telegram and Discord adapters contribute in production."""
    telegram = TelegramAdapter(
        engine,
        TelegramSettings(
            token=SecretStr("123:abc"), mode="webhook", webhook_secret=SecretStr(TELEGRAM_SECRET)
        ),
        WebSettings(public_url="https://bot.example.org"),
        events=store,
    )
    discord = build_discord_adapter(
        engine, DiscordSettings(public_key=DISCORD_PUBLIC_KEY), events=store
    )
    return [*telegram.web_routes(), *discord.web_routes()]


@pytest.fixture
async def full_site(make_site: MakeSite, store: SqliteStore, engine: Engine) -> AsyncIterator[Site]:
    async with make_site(extra_routes=platform_routes(engine, store)) as site:
        yield site


def state_changing_routes(app: web.Application) -> list[tuple[str, str, bool]]:
    """``(method, path, exempt)`` of every route that is not a safe method."""
    found = set()
    for route in app.router.routes():
        if route.method in SAFE_METHODS:
            continue
        resource = route.resource
        assert resource is not None
        if resource.name == UNMATCHED:
            continue  # the catch-all that only answers 404 and 405 (adapters.web.routing)
        info = resource.get_info()
        assert "path" in info, f"dynamic route {resource.canonical}: give it sample values here"
        exempt = bool(getattr(route.handler, CSRF_EXEMPT_ATTR, False))
        found.add((route.method, resource.canonical, exempt))
    return sorted(found)


def forms_routes(site: Site) -> list[tuple[str, str]]:
    routes = [(m, p) for m, p, exempt in state_changing_routes(site.app) if not exempt]
    assert len(routes) >= 8, routes  # sign up, log in/out, chat, the account's forms
    return routes


async def victim_with_a_linked_identity(
    site: Site, store: SqliteStore, engine: Engine, name: str = "alice", telegram_id: str = "77"
) -> Browser:
    """A logged-in victim whose account has something to lose: a linked Telegram
    identity (user 77 by default, the one the forged unlink names)."""
    victim = site.browser()
    await victim.sign_up(name)
    account = await store.find_account(name)
    assert account is not None
    code = await create_link_code(store, account.id, time.time())
    for text in (f"/link {code}", "/link confirm"):
        linking = Incoming("telegram", telegram_id, "Tg", telegram_id, True, text)
        async for _ in engine.handle(linking):
            pass
    assert len(await store.list_identities(account.id)) == 1
    return victim


#: ``attack(site, victim, method, path, mallorys_token) -> reply``
Attack = Callable[[Site, Browser, str, str, str], Awaitable[Reply]]


async def _no_token(site: Site, victim: Browser, method: str, path: str, _: str) -> Reply:
    return await victim.request(method, path, data=FORM, headers={"Origin": site.url})


async def _token_of_another_session(
    site: Site, victim: Browser, method: str, path: str, stolen: str
) -> Reply:
    return await victim.request(
        method, path, data={**FORM, "csrf_token": stolen}, headers={"Origin": site.url}
    )


def _with_origin(origin: Callable[[Site], str], header: str = "Origin") -> Attack:
    async def attack(site: Site, victim: Browser, method: str, path: str, _: str) -> Reply:
        token = await victim.token("/account")
        return await victim.request(
            method, path, data={**FORM, "csrf_token": token}, headers={header: origin(site)}
        )

    return attack


async def _token_in_query_string(
    site: Site, victim: Browser, method: str, path: str, _: str
) -> Reply:
    token = await victim.token("/account")
    return await victim.request(
        method, f"{path}?csrf_token={token}", data=FORM, headers={"Origin": site.url}
    )


async def _text_plain_body(site: Site, victim: Browser, method: str, path: str, _: str) -> Reply:
    """A cross-site ``<form enctype="text/plain">`` needs no preflight."""
    token = await victim.token("/account")
    body = "&".join(f"{k}={v}" for k, v in {**FORM, "csrf_token": token}.items())
    return await victim.request(
        method, path, data=body, headers={"Content-Type": "text/plain", "Origin": site.url}
    )


def _port(site: Site) -> str:
    return site.url.rsplit(":", 1)[1]


ATTACKS: dict[str, Attack] = {
    "no-token": _no_token,
    "another-sessions-token": _token_of_another_session,
    "foreign-origin": _with_origin(lambda site: "https://evil.example"),
    "null-origin": _with_origin(lambda site: "null"),
    "origin-host-as-subdomain-of-evil": _with_origin(lambda site: f"{site.url}.evil.example"),
    "origin-other-port": _with_origin(lambda site: f"http://127.0.0.1:{int(_port(site)) ^ 1}"),
    "foreign-referer-without-origin": _with_origin(
        lambda site: "https://evil.example/page", header="Referer"
    ),
    "referer-with-our-host-in-path": _with_origin(
        lambda site: f"https://evil.example/{site.url}/account", header="Referer"
    ),
    "token-in-query-string": _token_in_query_string,
    "text-plain-body": _text_plain_body,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_every_state_changing_route_refuses_a_forged_request(
    full_site: Site, store: SqliteStore, engine: Engine, db_path: Path, attack: str
) -> None:
    victim = await victim_with_a_linked_identity(full_site, store, engine)
    mallory = full_site.browser()
    await mallory.sign_up("mallory")
    mallorys_token = await mallory.token("/account")
    for method, path in forms_routes(full_site):
        before = db_snapshot(db_path)
        reply = await ATTACKS[attack](full_site, victim, method, path, mallorys_token)
        assert reply.status == 403, (method, path, reply.status, reply.text[:200])
        assert "did not come from this site" in reply.text
        assert db_snapshot(db_path) == before, f"{method} {path} changed the store"
    assert await victim.logged_in_as() == "alice"


async def test_the_same_requests_with_the_pages_token_get_through(
    full_site: Site, store: SqliteStore, engine: Engine
) -> None:
    """The control: the attack tests can fail, because the token alone lets these in."""
    for number, (method, path) in enumerate(forms_routes(full_site)):
        victim = await victim_with_a_linked_identity(
            full_site, store, engine, f"user{number}", telegram_id=f"9{number}"
        )
        token = await victim.token("/account")
        reply = await victim.request(
            method, path, data={**FORM, "csrf_token": token}, headers={"Origin": full_site.url}
        )
        assert reply.status != 403, (method, path, reply.text[:200])
        assert reply.status < 500, (method, path, reply.status)


async def test_same_origin_without_origin_or_referer_is_decided_by_the_token(site: Site) -> None:
    """Some privacy settings strip both headers: the token alone then decides."""
    alice = site.browser()
    await alice.sign_up("alice")
    token = await alice.token("/account")
    refused = await alice.post("/account/link-code", data={"csrf_token": "0" * 64})
    assert refused.status == 403
    accepted = await alice.post("/account/link-code", data={"csrf_token": token})
    assert accepted.status == 200 and 'id="link-code"' in accepted.text
    same_referer = await alice.post(
        "/account/link-code",
        data={"csrf_token": token},
        headers={"Referer": f"{site.url}/account"},
    )
    assert same_referer.status == 200


async def test_the_exempt_routes_are_exactly_the_signed_webhooks(full_site: Site) -> None:
    """Only routes that authenticate another way skip the token, and they do refuse a
    request that is not from Telegram or Discord."""
    exempt = {p for _, p, e in state_changing_routes(full_site.app) if e}
    assert exempt == SIGNED_ELSEWHERE
    browser = full_site.browser()
    await browser.sign_up("alice")  # even with a session cookie
    telegram = await browser.post("/telegram/webhook", json_body={"update_id": 1})
    assert telegram.status == 403
    body = b'{"type": 1}'
    discord = await browser.post(
        "/discord/interactions", data=body, headers={"Content-Type": "application/json"}
    )
    assert discord.status == 401
    signed = await browser.post("/discord/interactions", data=body, headers=discord_signed(body))
    assert signed.status == 200 and signed.json() == {"type": 1}, "the signature is what counts"


async def test_login_csrf_cannot_put_a_victim_into_the_attackers_account(
    site: Site, db_path: Path
) -> None:
    """Logging a victim into the attacker's account (to read what they then type) needs
    the victim's anonymous token; the attacker's own pair is useless elsewhere."""
    mallory = site.browser()
    await mallory.sign_up("mallory")
    await mallory.log_out()
    mallorys_token = await mallory.token("/login")
    victim = site.browser()
    await victim.get("/login")  # has an anonymous CSRF cookie of its own
    for path in ("/login", "/signup"):
        before = db_snapshot(db_path)
        reply = await victim.post(
            path,
            data={**FORM, "csrf_token": mallorys_token},
            headers={"Origin": "https://evil.example"},
        )
        assert reply.status == 403
        same_origin = await victim.post(
            path, data={**FORM, "csrf_token": mallorys_token}, headers={"Origin": site.url}
        )
        assert same_origin.status == 403
        assert "pb_session" not in victim.cookies
        assert db_snapshot(db_path) == before


async def test_a_pages_token_dies_with_its_session(site: Site, db_path: Path) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    old_token = await alice.token("/account")
    await alice.log_out()
    assert (await alice.log_in("alice")).status == 303
    before = db_snapshot(db_path)
    reply = await alice.post(
        "/account/link-code", data={"csrf_token": old_token}, headers={"Origin": site.url}
    )
    assert reply.status == 403
    assert db_snapshot(db_path) == before


async def test_a_non_ascii_token_is_refused_not_a_crash(site: Site) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    for token in ("é" * 64, "\u202e" + "a" * 63, "０" * 64):
        header = await alice.post(
            "/chat/send",
            json_body={"text": "hi"},
            headers={"X-CSRF-Token": token, "Accept": "text/event-stream"},
        )
        form = await alice.post("/account/link-code", data={"csrf_token": token})
        assert header.status == 403, token
        assert form.status == 403, token
