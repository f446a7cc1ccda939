"""Helpers the web tests share: an engine over fakes, forms, CSRF tokens, accounts."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from bot.backends.guard import GuardPolicy
from bot.engine import Engine
from bot.messages import Incoming
from bot.personas import Persona
from bot.store.base import Store
from tests.support import engine as engine_support

Client = TestClient[web.Request, web.Application]
#: The ``make_client`` fixture: ``await make_client(**create_app_options)``.
MakeClient = Callable[..., Awaitable[Client]]
PASSWORD = "correct horse battery"
FAST = GuardPolicy(first_delta_timeout=2.0, total_timeout=5.0, retries=0, retry_backoff=0)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def build_engine(store: Store, personas: Sequence[Persona] | None = None) -> Engine:
    """The engine of the web tests: an echo, and ``personas`` (two on it unless given)."""
    return engine_support.build_engine(store, personas=personas, policy=FAST)


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has a form with a CSRF token"
    return match.group(1)


async def page_token(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_from(await response.text())


async def post_form(
    client: Client, path: str, data: dict[str, str], *, token_from: str | None = None
) -> ClientResponse:
    """POST a form the way a browser does: with the token of the page it came from."""
    token = await page_token(client, token_from or path)
    return await client.post(path, data={"csrf_token": token, **data}, allow_redirects=False)


async def sign_up(client: Client, username: str, password: str = PASSWORD) -> ClientResponse:
    response = await post_form(
        client, "/signup", {"username": username, "password": password, "confirm": password}
    )
    assert response.status == 303, await response.text()
    return response


async def log_in(
    client: Client, username: str, password: str = PASSWORD, **extra: str
) -> ClientResponse:
    return await post_form(client, "/login", {"username": username, "password": password, **extra})


async def log_out(client: Client) -> ClientResponse:
    return await post_form(client, "/logout", {}, token_from="/account")


def session_cookie(client: Client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == "pb_session":
            return cookie.value
    return None


def use_session(client: Client, token: str | None) -> None:
    """Replace the browser's cookies with just this session token."""
    client.session.cookie_jar.clear()
    if token is not None:
        client.session.cookie_jar.update_cookies({"pb_session": token})


async def ask(engine: Engine, incoming: Incoming) -> str:
    """Send through the engine as another platform would; the final text."""
    _, done = await engine_support.send(engine, incoming)
    return done.text if done else ""


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    """``[(event, data), ...]`` from a text/event-stream body."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events
