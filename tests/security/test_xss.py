"""Cross-site scripting: every field a stranger can write is inert in every page.

Who writes what the pages show: people typing into our forms (usernames, ``next=``,
any query parameter), Telegram and Discord users (display names), card authors
(persona names, descriptions, greetings: cards are downloaded from the internet), chat
partners (messages) and the persona's backend (replies). Each hostile value goes in
through the real path (the Discord interactions endpoint, the card importer, the chat
form) and every HTML response is then parsed like a browser would:

* the value shows up as text (or as the value of the attribute it belongs in), so the
  test sees the field at all;
* the raw value is nowhere in the markup, and no element, event handler or
  ``javascript:`` URL exists that our templates do not make themselves;
* template syntax stays text (``{{ 31337*3 }}`` is never ``94011``);
* the Content-Security-Policy forbids inline script, as a second line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.discord import INTERACTIONS_PATH
from adapters.web import create_app
from adapters.web.render import build_templates
from auth import AccountService
from bot.config import RateLimitSettings
from bot.engine import Engine
from bot.messages import Identity
from bot.personas import PersonaLibrary
from bot.store.sqlite import SqliteStore
from tests.support.discord_harness import fast_adapter, slash, user
from tests.support.discord_server import FakeDiscord
from tests.support.fakes import WindowEcho
from tests.support.web_site import (
    DISCORD_PUBLIC_KEY,
    Browser,
    CountingMetrics,
    MakeSite,
    Reply,
    Site,
    build_engine,
    discord_signed,
)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</textarea><script>alert(2)</script>",
    "</title><script>alert(3)</script>",
    '<a href="javascript:alert(4)">click</a>',
    "{{ 31337*3 }}{{7*'7'}}{% if 1 %}TPL{% endif %}",
    "<!--",
    "<iframe srcdoc='<script>alert(5)</script>'>",
]
#: What template syntax would turn into if anything evaluated it.
EVALUATED = ("94011", "7777777")
#: a random token as our pages carry them (at least 32 hex or URL-safe characters)
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{32,}")
#: Every element our templates make; anything else in a page was injected.
OUR_ELEMENTS = frozenset(
    [
        "html",
        "head",
        "meta",
        "title",
        "link",
        "script",
        "body",
        "header",
        "nav",
        "a",
        "span",
        "form",
        "input",
        "button",
        "main",
        "p",
        "section",
        "h1",
        "h2",
        "h3",
        "ul",
        "ol",
        "li",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "strong",
        "pre",
        "label",
        "select",
        "option",
        "textarea",
        "div",
        "small",
        "details",
        "summary",
        "img",  # the persona's picture, from /personas/ID/avatar only (checked below)
    ]
)
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data-copy", "srcdoc"})


@dataclass
class ParsedPage(HTMLParser):
    """A page as a browser's tokenizer sees it."""

    elements: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    script_bodies: list[str] = field(default_factory=list)
    _in_script: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))
        self._in_script = tag == "script"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.script_bodies if self._in_script else self.texts).append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment in the page (our templates have none): {data[:60]!r}")

    @property
    def values(self) -> list[str]:
        return [value or "" for _, attrs in self.elements for _, value in attrs]


def parse(html: str) -> ParsedPage:
    page = ParsedPage()
    page.feed(html)
    page.close()
    return page


def assert_inert(reply: Reply, where: str, expected: Sequence[str] = ()) -> None:
    """The page has only our own markup, and each of ``expected`` is shown as data."""
    assert reply.headers["Content-Type"].startswith("text/html"), where
    html = reply.text
    page = parse(html)
    for tag, attrs in page.elements:
        assert tag in OUR_ELEMENTS, f"{where}: injected <{tag}>"
        for name, value in attrs:
            assert not name.startswith("on"), f"{where}: event handler {name}={value!r}"
            if name in URL_ATTRIBUTES and value is not None:
                scheme = re.sub(r"[\x00-\x20]", "", value).lower()
                assert not scheme.startswith(("javascript:", "vbscript:")), f"{where}: {value!r}"
                if scheme.startswith("data:"):
                    assert (tag, value) == ("link", "data:,"), f"{where}: {value!r}"
        if tag == "script":
            src = dict(attrs).get("src") or ""
            assert src.startswith("/static/"), f"{where}: a script not from /static/"
        if tag == "img":
            src = dict(attrs).get("src") or ""
            assert re.fullmatch(r"/personas/[a-z0-9_-]+/avatar", src), f"{where}: injected <img>"
    assert not any(body.strip() for body in page.script_bodies), f"{where}: inline script"
    assert len([e for e in page.elements if e[0] == "textarea"]) <= 1, f"{where}: textarea"
    # Random tokens (CSRF, cookies) are long runs of hex or URL-safe characters and
    # may hold a marker's digits by chance (one in ~15,000 pages did): leave them out.
    without_tokens = TOKEN_LIKE.sub("", html)
    for marker in EVALUATED:
        assert marker not in without_tokens, f"{where}: template syntax was evaluated"
    shown = "\n".join(page.texts + page.values)
    for payload in expected:
        if any(ch in payload for ch in "<>\"'&"):
            assert payload not in html, f"{where}: {payload!r} unescaped"
        assert payload in shown, f"{where}: {payload!r} is not on the page at all"


async def crawl(browser: Browser, paths: list[str]) -> dict[str, Reply]:
    return {path: await browser.get(path) for path in paths}


# -- typed by visitors ------------------------------------------------------------------


async def test_typed_usernames_are_inert_on_the_refusal_pages(site: Site) -> None:
    browser = site.browser()
    for payload in HOSTILE:
        signup = await browser.submit(
            "/signup", {"username": payload, "password": "x", "confirm": "x"}
        )
        assert signup.status == 400
        assert_inert(signup, f"signup {payload!r}", [payload])
        login = await browser.submit("/login", {"username": payload, "password": "wrong pass"})
        assert login.status == 401
        assert_inert(login, f"login {payload!r}", [payload])


async def test_reflected_query_values_are_inert(site: Site) -> None:
    """``next=`` is kept in the login and sign-up forms; ``done=`` picks a fixed
    notice; other parameters and unknown paths are shown nowhere."""
    anonymous, alice = site.browser(), site.browser()
    await alice.sign_up("alice")
    for payload in HOSTILE:
        as_path = "/" + payload.lstrip("/")
        for path in ("/login", "/signup"):
            reply = await anonymous.get(f"{path}?next={_q(as_path)}&error={_q(payload)}")
            assert reply.status == 200
            assert_inert(reply, f"{path} next={as_path!r}", [as_path])
            assert payload not in "\n".join(parse(reply.text).texts), "error= is not shown"
        for browser, path in (
            (anonymous, "/"),
            (alice, "/"),
            (alice, "/account"),
            (alice, "/chat"),
        ):
            reply = await browser.get(f"{path}?done={_q(payload)}&message={_q(payload)}")
            assert reply.status == 200
            assert_inert(reply, f"{path}?done={payload!r}")
            assert payload not in "\n".join(parse(reply.text).texts + parse(reply.text).values)
        missing = await anonymous.get("/no/" + _q(payload))
        assert missing.status == 404
        assert_inert(missing, f"404 {payload!r}")


def _q(value: str) -> str:
    return quote(value, safe="")


# -- written on other platforms ---------------------------------------------------------


@dataclass
class DiscordSite:
    site: Site
    store: SqliteStore

    async def link(self, browser: Browser, user_id: int, name: str) -> None:
        """Get a code on the account page, send ``/link CODE`` over the interactions
        endpoint as a Discord user whose display name is ``name``, then ``/link
        confirm`` (again, until the first has been answered); wait for the link."""
        page = await browser.submit("/account/link-code", {}, token_from="/account")
        code = re.search(r'id="link-code">([A-Z0-9-]+)<', page.text)
        assert code, page.text
        person = {**user(user_id, f"user{user_id}"), "global_name": name}

        async def send(text: str) -> None:
            body = json.dumps(slash("link", code=text, guild=False, person=person)).encode()
            reply = await browser.post(INTERACTIONS_PATH, data=body, headers=discord_signed(body))
            assert reply.status == 200, reply.text

        await send(code.group(1))
        async with asyncio.timeout(10):
            while await self.store.get_identity(Identity("discord", str(user_id))) is None:
                await asyncio.sleep(0.05)
                await send("confirm")


@pytest.fixture
async def discord_site(
    make_site: MakeSite, engine: Engine, store: SqliteStore
) -> AsyncIterator[DiscordSite]:
    async with FakeDiscord() as fake:
        settings = fake.settings(token=None, public_key=DISCORD_PUBLIC_KEY)
        adapter = fast_adapter(engine, settings, events=store)
        async with adapter, make_site(extra_routes=adapter.web_routes()) as site:
            yield DiscordSite(site, store)


async def test_display_names_from_other_platforms_are_inert(
    discord_site: DiscordSite, store: SqliteStore
) -> None:
    alice = discord_site.site.browser()
    await alice.sign_up("alice")
    for number, payload in enumerate(HOSTILE):
        await discord_site.link(alice, 5000 + number, payload)
    account = await store.find_account("alice")
    assert account is not None
    assert len(await store.list_identities(account.id)) == len(HOSTILE)
    page = await alice.get("/account")
    assert_inert(page, "account page", HOSTILE)


# -- persona cards ----------------------------------------------------------------------


def hostile_cards(directory: Path) -> PersonaLibrary:
    """SillyTavern V2 cards with a payload in every shown field, through the importer."""
    directory.mkdir()
    for number, payload in enumerate(HOSTILE):
        card = {
            "spec": "chara_card_v2",
            "spec_version": "2.0",
            "data": {
                "name": f"P{number} {payload}",
                "description": f"{{{{char}}}} is {payload}",
                "first_mes": f"Hello {{{{user}}}}! {payload}",
                "personality": payload,
                "scenario": "",
                "mes_example": "",
            },
        }
        (directory / f"card{number:02}.json").write_text(json.dumps(card))
    return PersonaLibrary.from_directory(directory)


async def test_persona_cards_are_inert_on_every_page(
    make_site: MakeSite,
    store: SqliteStore,
    accounts: AccountService,
    metrics: CountingMetrics,
    tmp_path: Path,
) -> None:
    library = hostile_cards(tmp_path / "personas")
    personas = list(library)
    engine = build_engine(store, backend=WindowEcho(name="offline"), personas=personas)
    async with make_site(engine=engine, accounts=accounts) as site:
        alice = site.browser()
        await alice.sign_up("alice")
        names = [p.name for p in personas]
        home = await site.browser().get("/")
        assert_inert(home, "home (anonymous)", names)
        assert_inert(await alice.get("/"), "home", names)
        assert_inert(await alice.get("/account"), "account", names)
        for persona, payload in zip(personas, HOSTILE, strict=True):
            switched = await alice.submit(
                "/account/persona", {"persona": persona.id}, token_from="/account"
            )
            assert switched.status == 303
            chat = await alice.get("/chat")
            assert_inert(chat, f"chat with {persona.id}", [persona.name, f"Hello alice! {payload}"])
            assert f"{persona.name} is {payload}" in "\n".join(parse(chat.text).texts)


# -- chat -------------------------------------------------------------------------------


async def test_chat_messages_and_replies_are_inert_in_the_history(
    make_site: MakeSite, store: SqliteStore
) -> None:
    # More messages than the per-minute limit allows: the limit is not the subject here.
    engine = build_engine(store, rate_limit=RateLimitSettings(per_minute=1e6, burst=1000))
    async with make_site(engine=engine) as site:
        alice = site.browser()
        await alice.sign_up("alice")
        for payload in HOSTILE:
            sent = await alice.submit("/chat/send", {"text": payload}, token_from="/chat")
            assert sent.status == 303
        chat = await alice.get("/chat")
    assert_inert(chat, "chat history", HOSTILE)
    shown = "\n".join(parse(chat.text).texts)
    assert all(f"re:{payload} saw:[" in shown for payload in HOSTILE), "the replies too"


async def test_streamed_replies_are_not_html(site: Site) -> None:
    """The reply stream is JSON in text/event-stream: never sniffed as a page."""
    alice = site.browser()
    await alice.sign_up("alice")
    token = await alice.token("/chat")
    reply = await alice.post(
        "/chat/send",
        json_body={"text": HOSTILE[0]},
        headers={"X-CSRF-Token": token, "Accept": "text/event-stream"},
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    assert any(HOSTILE[0] in event.get("text", "") for event in events)


# -- link codes -------------------------------------------------------------------------


async def test_link_codes_and_the_telegram_deep_link_are_ours_only(
    make_site: MakeSite, store: SqliteStore, engine: Engine, accounts: AccountService
) -> None:
    with pytest.raises(ValueError, match="bot username"):
        create_app(
            engine, accounts, upkeep=store, telegram_bot_username='x"><script>alert(1)</script>'
        )
    async with make_site(telegram_bot_username="persona_bot") as site:
        alice = site.browser()
        await alice.sign_up("alice")
        page = await alice.submit("/account/link-code", {}, token_from="/account")
        assert_inert(page, "link code page")
        code = re.search(r'id="link-code">([A-Z2-9]{4}-[A-Z2-9]{4})<', page.text)
        assert code, "the code is letters and digits only"
        hrefs = [v for t, a in parse(page.text).elements if t == "a" for k, v in a if k == "href"]
        assert f"https://t.me/persona_bot?start=link-{code.group(1)}" in hrefs


# -- the second line: CSP ---------------------------------------------------------------


async def test_every_html_response_forbids_inline_script(site: Site) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    anonymous = site.browser()
    responses = [
        *(await crawl(alice, ["/", "/chat", "/account", "/nope"])).values(),
        *(await crawl(anonymous, ["/", "/login", "/signup", "/account", "/nope"])).values(),
        await anonymous.get("/logout"),  # 405
        await anonymous.post("/login", data={"username": "x"}),  # 403
        await alice.submit("/login", {"username": "alice", "password": "wrong password"}),
    ]
    statuses = {r.status for r in responses}
    assert {200, 303, 401, 403, 404, 405} <= statuses
    for reply in responses:
        csp = reply.headers["Content-Security-Policy"]
        directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
        assert directives["default-src"] == ["'none'"]
        assert directives["script-src"] == ["'self'"], "no inline, no eval, no other hosts"
        assert directives["base-uri"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["form-action"] == ["'self'"]
        assert "unsafe" not in csp
        assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_the_check_catches_a_template_that_stops_escaping() -> None:
    """The oracle itself: our real login template rendered without autoescape must
    fail it (so the tests above would notice if escaping were switched off)."""
    env = build_templates()
    env.autoescape = False
    for payload in HOSTILE[:3]:
        html = env.get_template("login.html").render(
            account=None, csrf_token="t", next="/", username=payload, error=None
        )
        reply = Reply(200, CIMultiDictProxy(CIMultiDict({"Content-Type": "text/html"})), html)
        with pytest.raises(AssertionError):
            assert_inert(reply, "unescaped", [payload])
