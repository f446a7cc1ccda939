"""Cookie flags: what a session cookie must carry so that scripts, other sites, other
subdomains and plain-HTTP networks cannot read, send or plant it.

* ``HttpOnly``: an XSS cannot read the token.
* ``SameSite=Lax`` (or Strict): other sites' forms do not carry it (CSRF's first line).
* ``Path=/`` and no ``Domain``: host-only, not shared with sibling subdomains.
* Behind HTTPS (``WEB__SECURE_COOKIES``): ``Secure`` and the ``__Host-`` prefix, which
  browsers refuse to let anyone set without Secure, Path=/ and no Domain; a cookie
  without the prefix (plantable over plain HTTP) is ignored.
* ``Max-Age`` equal to the server's session lifetime; logout sends ``Max-Age=0`` with
  the same attributes (a browser ignores a deletion whose attributes differ).
* The session id never travels in a URL, a page or any other header.
"""

from __future__ import annotations

import re

import pytest

from auth import AccountService
from bot.config import WebSettings
from tests.support.web_site import PASSWORD, MakeSite, Reply, SetCookie, Site

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43,}")


def assert_host_only(cookie: SetCookie, *, secure: bool) -> None:
    attributes = cookie.attributes
    assert "httponly" in attributes, cookie.raw
    assert attributes.get("samesite", "").lower() in ("lax", "strict"), cookie.raw
    assert attributes.get("path") == "/", cookie.raw
    assert "domain" not in attributes, cookie.raw
    assert ("secure" in attributes) is secure, cookie.raw
    if secure:
        assert cookie.name.startswith("__Host-"), cookie.raw


def session_cookie_of(reply: Reply, name: str) -> SetCookie:
    cookie = reply.cookie(name)
    assert cookie is not None, reply.headers.getall("Set-Cookie", [])
    return cookie


@pytest.mark.parametrize("secure", [False, True], ids=["http", "behind-https"])
async def test_every_cookie_is_http_only_same_site_and_host_only(
    make_site: MakeSite, accounts: AccountService, secure: bool
) -> None:
    prefix = "__Host-" if secure else ""
    async with make_site(settings=WebSettings(secure_cookies=secure)) as site:
        browser = site.browser()
        login_page = await browser.get("/login")
        csrf = session_cookie_of(login_page, f"{prefix}pb_csrf")
        assert_host_only(csrf, secure=secure)
        assert TOKEN_SHAPE.fullmatch(csrf.value)

        signed_up = await browser.sign_up("alice")
        logged_in = await browser.log_in("alice")
        for reply in (signed_up, logged_in):
            session = session_cookie_of(reply, f"{prefix}pb_session")
            assert_host_only(session, secure=secure)
            assert TOKEN_SHAPE.fullmatch(session.value), "256 random bits, URL-safe"
            assert int(session.attributes["max-age"]) == int(accounts.sessions.ttl)
        assert 0 < accounts.sessions.ttl <= 30 * 24 * 3600

        logged_out = await browser.log_out()
        cleared = session_cookie_of(logged_out, f"{prefix}pb_session")
        assert cleared.deletes and cleared.value == ""
        assert_host_only(cleared, secure=secure)  # same attributes, or it is not deleted

        if secure:
            assert logged_in.headers["Strict-Transport-Security"].startswith("max-age=")
            assert int(logged_in.headers["Strict-Transport-Security"][8:]) >= 180 * 24 * 3600
        else:
            assert "Strict-Transport-Security" not in logged_in.headers


async def test_deleting_the_account_clears_the_cookie(site: Site) -> None:
    browser = site.browser()
    await browser.sign_up("alice")
    reply = await browser.submit("/account/delete", {"password": PASSWORD}, token_from="/account")
    cleared = session_cookie_of(reply, "pb_session")
    assert cleared.deletes
    assert_host_only(cleared, secure=False)


async def test_behind_https_a_cookie_without_the_host_prefix_is_ignored(
    make_site: MakeSite,
) -> None:
    """Over plain HTTP a network attacker (or a sibling subdomain) can plant
    ``pb_session``; only ``__Host-pb_session`` can come from this site over HTTPS."""
    async with make_site(settings=WebSettings(secure_cookies=True)) as site:
        alice = site.browser()
        await alice.sign_up("alice")
        token = alice.cookies["__Host-pb_session"]
        planted = site.browser()
        planted.cookies["pb_session"] = token
        assert await planted.logged_in_as() is None
        planted.cookies["__Host-pb_session"] = token
        assert await planted.logged_in_as() == "alice"


async def test_the_session_id_never_appears_in_a_url_a_page_or_another_header(
    site: Site,
) -> None:
    browser = site.browser()
    await browser.sign_up("alice")
    token = browser.cookies["pb_session"]
    replies = [
        await browser.get(path)
        for path in ("/", "/chat", "/account", "/account/export", "/login", "/signup", "/nope")
    ]
    replies.append(await browser.submit("/account/link-code", {}, token_from="/account"))
    replies.append(await browser.submit("/chat/send", {"text": "hi"}, token_from="/chat"))
    replies.append(await browser.get("/chat"))
    replies.append(await browser.log_in("alice", next="/account"))
    for reply in replies:
        assert token not in reply.text
        for name, value in reply.headers.items():
            if name.lower() != "set-cookie":
                assert token not in value, name
        assert reply.location is None or "session" not in reply.location.lower()


async def test_a_session_id_in_the_url_or_the_form_is_not_a_session(site: Site) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    token = alice.cookies["pb_session"]
    visitor = site.browser()
    for query in (f"pb_session={token}", f"session={token}", f"token={token}"):
        reply = await visitor.get(f"/account?{query}")
        assert reply.status == 303 and reply.location is not None
        assert reply.location.startswith("/login")
    form = await visitor.post(
        "/account/link-code", data={"pb_session": token, "csrf_token": "x" * 64}
    )
    assert form.status == 403
    assert "pb_session" not in visitor.cookies


async def test_cookies_are_set_only_where_a_page_needs_them(site: Site) -> None:
    """Static files and operations answers carry no cookie (a shared cache that kept
    one would hand it to everybody); pages that set one are never cached."""
    browser = site.browser()
    await browser.sign_up("alice")
    for path in ("/static/app.css", "/static/chat.js", "/healthz", "/metrics"):
        reply = await browser.get(path)
        assert reply.status == 200, path
        assert not reply.cookies, (path, reply.cookies)
    for path in ("/login", "/signup"):
        reply = await site.browser().get(path)
        assert reply.cookies, f"{path} mints the anonymous CSRF cookie"
        assert reply.headers.get("Cache-Control") == "no-store", path
    for path in ("/chat", "/account", "/account/export"):
        reply = await browser.get(path)
        assert reply.headers.get("Cache-Control") == "no-store", path
