"""What the security suite shares: the real web app on loopback, browsers with a cookie
jar of their own, clocks, a counting metrics sink, Discord request signing, and a
snapshot of the SQLite file (to prove a refused request wrote nothing).

The browser keeps cookies itself (not aiohttp's jar) so a test can see every
``Set-Cookie`` attribute, plant a cookie the way an attacker would, and send cookies
a real browser would only send over HTTPS.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from nacl.signing import SigningKey

from adapters.web import WebAdapter, create_app
from auth import AccountService
from bot.adapter import WebRoute
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy
from bot.config import RateLimitSettings, WebSettings
from bot.engine import Engine
from bot.personas import Persona
from bot.store.base import Store, StoreUpkeep
from tests.support import engine as engine_support
from tests.support.clocks import Clock

PASSWORD = "correct horse battery"
FAST = GuardPolicy(first_delta_timeout=2.0, total_timeout=10.0, retries=0, retry_backoff=0)
#: The key "Discord" signs interactions with in these tests.
DISCORD_KEY = SigningKey(bytes(range(32)))
DISCORD_PUBLIC_KEY = DISCORD_KEY.verify_key.encode().hex()
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"|name="csrf-token" content="([^"]*)"')


@dataclass
class CountingMetrics:
    """Our :class:`bot.metrics.Metrics`, counting: ``messages_in`` is every message the
    engine was asked to handle, so "no engine call" is ``messages_in == []``."""

    messages_in: list[str] = field(default_factory=list)
    messages_out: list[tuple[str, str]] = field(default_factory=list)

    def message_in(self, platform: str) -> None:
        self.messages_in.append(platform)

    def message_out(self, platform: str, kind: str) -> None:
        self.messages_out.append((platform, kind))

    def backend_latency(self, backend: str, seconds: float) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def rate_limited(self, platform: str) -> None:
        pass


def build_engine(
    store: Store,
    *,
    backend: Backend | None = None,
    personas: Sequence[Persona] | None = None,
    clock: Clock | None = None,
    monotonic: Clock | None = None,
    metrics: CountingMetrics | None = None,
    rate_limit: RateLimitSettings | None = None,
) -> Engine:
    """The real engine over our fakes; every limit at its production default unless
    a test says otherwise."""
    return engine_support.build_engine(
        store,
        backend,
        personas=personas,
        policy=FAST,
        clock=clock or time.time,
        monotonic=monotonic or time.monotonic,
        metrics=metrics,
        rate_limit=rate_limit,
    )


# -- cookies and browsers ---------------------------------------------------------------


@dataclass(frozen=True)
class SetCookie:
    """One ``Set-Cookie`` header, parsed: attribute names lower-cased."""

    raw: str
    name: str
    value: str
    attributes: Mapping[str, str]

    @classmethod
    def parse(cls, raw: str) -> SetCookie:
        first, *rest = raw.split(";")
        name, _, value = first.strip().partition("=")
        attributes = {}
        for part in rest:
            key, _, val = part.strip().partition("=")
            attributes[key.lower()] = val
        return cls(raw, name, value, attributes)

    @property
    def deletes(self) -> bool:
        return self.attributes.get("max-age") == "0"


@dataclass
class Reply:
    """A response, read completely."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    @property
    def cookies(self) -> list[SetCookie]:
        return [SetCookie.parse(raw) for raw in self.headers.getall("Set-Cookie", [])]

    def cookie(self, name: str) -> SetCookie | None:
        return next((c for c in self.cookies if c.name == name), None)

    def csrf_token(self) -> str:
        match = _CSRF_FIELD.search(self.text)
        assert match, f"a page with a CSRF token (status {self.status})"
        return match.group(1) or match.group(2)

    def json(self) -> Any:
        return json.loads(self.text)


class Browser:
    """One browser: its own cookies, sent back as a browser would; no redirects
    followed (tests look at every ``Location``)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession):
        self.base_url = base_url
        self.origin = base_url
        self.cookies: dict[str, str] = {}
        self._session = session

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, str] | bytes | str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = CIMultiDict(headers or {})
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        async with self._session.request(
            method,
            self.base_url + path,
            data=data,
            json=json_body,
            headers=sent,
            allow_redirects=False,
        ) as response:
            text = await response.text(errors="replace")
            reply = Reply(response.status, response.headers, text)
        for cookie in reply.cookies:
            if cookie.deletes:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)

    async def token(self, page: str = "/login") -> str:
        """The CSRF token of a page's forms, as the browser got it (from the page it
        was sent on to, when ``page`` redirects: the login page does when logged in)."""
        reply = await self.get(page)
        if reply.status == 303 and reply.location:
            reply = await self.get(reply.location)
        assert reply.status == 200, (page, reply.status)
        return reply.csrf_token()

    async def submit(
        self,
        path: str,
        fields: Mapping[str, str],
        *,
        token_from: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Post a form the way a browser does: with the token of the page it is on and
        this site's ``Origin``."""
        token = await self.token(token_from or path)
        return await self.post(
            path,
            data={"csrf_token": token, **fields},
            headers={"Origin": self.origin, **(headers or {})},
        )

    async def sign_up(self, username: str, password: str = PASSWORD) -> Reply:
        reply = await self.submit(
            "/signup", {"username": username, "password": password, "confirm": password}
        )
        assert reply.status == 303, reply.text
        return reply

    async def log_in(self, username: str, password: str = PASSWORD, **extra: str) -> Reply:
        return await self.submit("/login", {"username": username, "password": password, **extra})

    async def log_out(self) -> Reply:
        return await self.submit("/logout", {}, token_from="/account")

    async def logged_in_as(self) -> str | None:
        """Who the site thinks this browser is (None: the login page)."""
        reply = await self.get("/account")
        if reply.status != 200:
            return None
        match = re.search(r'<span class="who">([^<]*)</span>', reply.text)
        return match.group(1) if match else None


@dataclass
class Site:
    """The real web adapter serving on loopback, with any contributed routes."""

    web: WebAdapter
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def app(self) -> web.Application:
        return self.web.app

    sessions_from: dict[str, aiohttp.ClientSession] = field(default_factory=dict)

    def browser(self) -> Browser:
        return Browser(self.url, self.session)

    def browser_from(self, address: str) -> Browser:
        """A browser connecting from another loopback address (``127.0.0.2``, ...):
        the server sees a different client address."""
        session = self.sessions_from.get(address)
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self.sessions_from[address] = session
        return Browser(self.url, session)


@asynccontextmanager
async def serve(
    engine: Engine,
    accounts: AccountService,
    *,
    upkeep: StoreUpkeep,
    settings: WebSettings | None = None,
    extra_routes: Sequence[WebRoute] = (),
    telegram_bot_username: str | None = None,
) -> AsyncIterator[Site]:
    settings = (settings or WebSettings()).model_copy(update={"port": 0})
    app = create_app(
        engine,
        accounts,
        upkeep=upkeep,
        settings=settings,
        extra_routes=extra_routes,
        telegram_bot_username=telegram_bot_username,
    )
    adapter = WebAdapter(app, access_log=False, shutdown_timeout=2.0)
    # Cookies are ours to keep (see Browser); aiohttp must not keep them as well.
    async with (
        adapter,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
    ):
        site = Site(adapter, session)
        try:
            yield site
        finally:
            for other in site.sessions_from.values():
                await other.close()


#: The ``make_site`` fixture: ``async with make_site(**serve_options) as site``.
MakeSite = Callable[..., AbstractAsyncContextManager[Site]]


# -- Discord signatures -----------------------------------------------------------------


def discord_signed(
    body: bytes, *, key: SigningKey = DISCORD_KEY, timestamp: float | None = None
) -> dict[str, str]:
    """The headers Discord sends with an interaction."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    return {
        "X-Signature-Ed25519": key.sign(stamp.encode() + body).signature.hex(),
        "X-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }


# -- the store's file -------------------------------------------------------------------


def db_snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite file, read by a separate connection: if
    two snapshots are equal, nothing was written between them."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        rows = {}
        for table in tables:
            query = f'SELECT * FROM "{table}"'  # noqa: S608 - names from the file itself
            rows[table] = sorted(conn.execute(query).fetchall(), key=repr)
        return rows


def db_rows(path: Path, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(query, tuple(params)).fetchall()
