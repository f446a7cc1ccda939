"""Protection: CSRF, security headers, bounded bodies, the error handler, escaping."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from aiohttp import web

from bot.adapter import WebRoute
from bot.config import WebSettings
from bot.engine import Engine
from bot.linking import create_link_code
from bot.messages import Incoming
from bot.store.memory import MemoryStore
from tests.support.fakes import make_persona
from tests.support.web_client import (
    PASSWORD,
    Client,
    MakeClient,
    ask,
    build_engine,
    log_in,
    page_token,
    post_form,
    sign_up,
)

TEMPLATES = Path(__file__).parents[2] / "adapters" / "web" / "templates"
HOSTILE = '<script>alert("x")</script>'

# -- CSRF -------------------------------------------------------------------------------

STATE_CHANGING = [
    pytest.param("/login", False, {"username": "ada", "password": PASSWORD}, id="login"),
    pytest.param(
        "/signup",
        False,
        {"username": "bob", "password": PASSWORD, "confirm": PASSWORD},
        id="signup",
    ),
    pytest.param("/logout", True, {}, id="logout"),
    pytest.param("/account/link-code", True, {}, id="link-code"),
    pytest.param("/account/unlink", True, {"platform": "telegram", "user_id": "1"}, id="unlink"),
    pytest.param("/account/persona", True, {"persona": "morrow"}, id="persona"),
    pytest.param("/account/delete", True, {"password": PASSWORD}, id="delete"),
    pytest.param("/chat/send", True, {"text": "hello"}, id="chat-form"),
]


@pytest.mark.parametrize(("path", "logged_in", "data"), STATE_CHANGING)
@pytest.mark.parametrize(
    "token", [pytest.param(None, id="missing"), pytest.param("x" * 64, id="wrong")]
)
async def test_state_changing_requests_need_the_csrf_token(
    client: Client, path: str, logged_in: bool, data: dict[str, str], token: str | None
) -> None:
    await sign_up(client, "ada")
    if not logged_in:
        await client.post("/logout", data={"csrf_token": await page_token(client, "/account")})
        await client.get("/login")  # has the anonymous CSRF cookie, like a real visitor
    form = dict(data, **({"csrf_token": token} if token else {}))
    response = await client.post(path, data=form, allow_redirects=False)
    assert response.status == 403
    assert "did not come from this site" in await response.text()
    assert (await client.get("/account", allow_redirects=False)).status == (
        200 if logged_in else 303
    ), "nothing changed"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-CSRF-Token": "0" * 64}, id="wrong"),
    ],
)
async def test_the_chat_endpoint_needs_the_csrf_header(
    client: Client, headers: dict[str, str]
) -> None:
    await sign_up(client, "ada")
    response = await client.post(
        "/chat/send",
        json={"text": "hello"},
        headers={"Accept": "text/event-stream", **headers},
    )
    assert response.status == 403
    assert (await response.json())["error"]


async def test_another_sessions_token_is_refused(make_client: MakeClient) -> None:
    alice, mallory = await make_client(), await make_client()
    await sign_up(alice, "alice")
    await sign_up(mallory, "mallory")
    stolen = await page_token(mallory, "/account")
    response = await alice.post(
        "/account/link-code", data={"csrf_token": stolen}, allow_redirects=False
    )
    assert response.status == 403


async def test_a_foreign_origin_is_refused_even_with_a_token(client: Client) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/account")
    response = await client.post(
        "/account/link-code",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    same = await client.post(
        "/account/link-code",
        data={"csrf_token": token},
        headers={"Origin": str(client.make_url("/")).rstrip("/")},
    )
    assert same.status == 200


async def test_contributed_routes_are_exempt_only_when_they_say_so(
    make_client: MakeClient,
) -> None:
    async def webhook(request: web.Request) -> web.Response:
        return web.Response(text="hook ok")

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="plain ok")

    client = await make_client(
        extra_routes=[
            WebRoute("POST", "/hooks/telegram", webhook, csrf_exempt=True),
            WebRoute("POST", "/hooks/plain", plain),
        ]
    )
    hooked = await client.post("/hooks/telegram", json={"update_id": 1})
    assert hooked.status == 200 and await hooked.text() == "hook ok"
    assert "Content-Security-Policy" in hooked.headers
    assert (await client.post("/hooks/plain", json={})).status == 403


# -- headers, errors, bodies ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="home"),
        pytest.param("/login", id="login"),
        pytest.param("/static/chat.js", id="static"),
        pytest.param("/no/such/page", id="not-found"),
        pytest.param("/healthz", id="health"),
    ],
)
async def test_security_headers_are_on_every_response(client: Client, path: str) -> None:
    response = await client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_template_has_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        assert "style=" not in html and "<style" not in html, template.name


async def test_secure_cookies_behind_https(make_client: MakeClient) -> None:
    client = await make_client(settings=WebSettings(secure_cookies=True))
    response = await client.get("/login")
    cookie = response.cookies["__Host-pb_csrf"]
    assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    token = re.search(r'name="csrf_token" value="([^"]+)"', await response.text())
    assert token
    signed_up = await client.post(
        "/signup",
        data={
            "csrf_token": token.group(1),
            "username": "ada",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
        headers={"Cookie": f"__Host-pb_csrf={cookie.value}"},
        allow_redirects=False,
    )
    assert signed_up.status == 303
    session = signed_up.cookies["__Host-pb_session"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        pytest.param("/login", "form", id="form"),
        pytest.param("/chat/send", "json", id="chat-json"),
    ],
)
async def test_oversized_bodies_get_413(client: Client, path: str, kind: str) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/account")
    big = "x" * (200 * 1024)
    if kind == "form":
        response = await client.post(path, data={"csrf_token": token, "username": big})
        assert response.status == 413
        assert "more than this site accepts" in await response.text()
    else:
        response = await client.post(
            path,
            json={"text": big},
            headers={"X-CSRF-Token": token, "Accept": "text/event-stream"},
        )
        assert response.status == 413
        assert "more than this site accepts" in (await response.json())["error"]


async def test_unexpected_errors_show_no_details_and_are_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    client = await make_client(extra_routes=[WebRoute("GET", "/broken", broken)])
    with caplog.at_level(logging.ERROR, logger="adapters.web.middleware"):
        response = await client.get("/broken")
    body = await response.text()
    assert response.status == 500
    assert "secret internals" not in body and "Traceback" not in body
    assert "Something went wrong on our side" in body
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


async def test_not_found_and_wrong_method_are_friendly_pages(client: Client) -> None:
    missing = await client.get("/nope")
    assert missing.status == 404 and "There is no page here" in await missing.text()
    wrong = await client.get("/logout")
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"


# -- escaping ---------------------------------------------------------------------------


async def test_html_in_typed_usernames_is_escaped(client: Client) -> None:
    signup = await post_form(
        client, "/signup", {"username": HOSTILE, "password": PASSWORD, "confirm": PASSWORD}
    )
    login = await log_in(client, HOSTILE, "wrong password!")
    for response in (signup, login):
        body = await response.text()
        assert HOSTILE not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


async def test_html_in_persona_cards_is_escaped(
    make_client: MakeClient, store: MemoryStore
) -> None:
    hostile = make_persona("evil", HOSTILE, backend="echo")
    client = await make_client(engine=build_engine(store, [hostile]))
    await sign_up(client, "ada")
    for path in ("/", "/chat", "/account"):
        body = await (await client.get(path)).text()
        assert HOSTILE not in body, path
        assert "&lt;script&gt;" in body, path


async def test_html_in_chat_text_and_display_names_is_escaped(
    client: Client, engine: Engine, store: MemoryStore
) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/chat")
    await client.post("/chat/send", data={"csrf_token": token, "text": HOSTILE})
    chat = await (await client.get("/chat")).text()
    assert HOSTILE not in chat and "re:&lt;script&gt;" in chat
    account = await store.find_account("ada")
    assert account is not None
    code = await create_link_code(store, account.id, time.time())
    await ask(engine, Incoming("telegram", "9", HOSTILE, "9", True, f"/link {code}"))
    await ask(engine, Incoming("telegram", "9", HOSTILE, "9", True, "/link confirm"))
    page = await (await client.get("/account")).text()
    assert HOSTILE not in page and "&lt;script&gt;" in page
