"""What the front of every request does, now that it is one middleware and pages are
served from cached bytes (issue 19): our cookies read straight from the header, the
anonymous page's CSRF token and cookie (new values drawn in batches), the security
headers on answers that are not pages, and the HTTP histogram counted without
prometheus-client's locks."""

from __future__ import annotations

import os
import re

import pytest
from aiohttp.test_utils import make_mocked_request

from adapters.web import PrometheusMetrics
from adapters.web.cookies import cookie_value
from adapters.web.csrf import _CookiePool
from bot.config import WebSettings
from tests.support.web_client import Client, MakeClient

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
COOKIE = "pb_csrf"


def csrf_cookie(response: object) -> str | None:
    """The anonymous CSRF cookie a response sets, if any."""
    headers = response.headers  # type: ignore[attr-defined]
    for header in headers.getall("Set-Cookie", []):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return str(rest.split(";", 1)[0])
    return None


async def login_page(client: Client, cookie: str | None = None) -> tuple[str, str | None]:
    """The login page's form token, and the CSRF cookie it set (None: it set none).
    (The client's cookie jar is emptied first: each call is a browser of its own.)"""
    client.session.cookie_jar.clear()
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
    response = await client.get("/login", headers=headers, allow_redirects=False)
    assert response.status == 200
    token = _TOKEN.search(await response.text())
    assert token is not None
    return token.group(1), csrf_cookie(response)


async def post_login(client: Client, cookie: str, token: str) -> int:
    client.session.cookie_jar.clear()
    response = await client.post(
        "/login",
        data={"csrf_token": token, "username": "nobody", "password": "not the password"},
        headers={"Cookie": f"{COOKIE}={cookie}"},
        allow_redirects=False,
    )
    return response.status


# -- reading our cookies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="no-cookie-header"),
        pytest.param("", None, id="empty"),
        pytest.param("pb_csrf=abc", "abc", id="alone"),
        pytest.param("a=1; pb_csrf=abc; b=2", "abc", id="among-others"),
        pytest.param("a=1;pb_csrf=abc", "abc", id="no-space"),
        pytest.param("pb_csrf=old; pb_csrf=new", "new", id="the-last-wins"),
        pytest.param("xpb_csrf=abc; pb_csrfx=def", None, id="only-the-exact-name"),
        pytest.param("__Host-pb_csrf=abc", None, id="not-the-prefixed-name"),
        pytest.param("pb_csrf", None, id="a-name-without-value"),
        pytest.param("pb_csrf=", "", id="an-empty-value"),
        pytest.param("pb_csrf=a=b", "a=b", id="equals-in-the-value"),
    ],
)
def test_a_cookie_is_read_from_the_header_as_sent(header: str | None, expected: str | None) -> None:
    headers = {"Cookie": header} if header is not None else {}
    request = make_mocked_request("GET", "/", headers=headers)
    assert cookie_value(request, "pb_csrf") == expected
    if expected is not None:  # what aiohttp's own parser reads there too
        assert request.cookies.get("pb_csrf") == expected


# -- the anonymous page's token -----------------------------------------------------------


async def test_a_first_visit_gets_a_cookie_and_a_token_made_from_it(client: Client) -> None:
    token, cookie = await login_page(client)
    assert cookie is not None and re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert await post_login(client, cookie, token) == 401  # past CSRF: a wrong password


async def test_a_returning_visitor_keeps_its_cookie_and_token(client: Client) -> None:
    token, cookie = await login_page(client)
    assert cookie is not None
    again, new_cookie = await login_page(client, cookie)
    assert new_cookie is None, "a browser with our cookie gets no new one"
    assert again == token


async def test_two_visitors_get_different_cookies_and_tokens(client: Client) -> None:
    first, second = await login_page(client), await login_page(client)
    assert first[1] != second[1] and first[0] != second[0]


async def test_another_visitors_token_is_refused(client: Client) -> None:
    token_a, cookie_a = await login_page(client)
    token_b, cookie_b = await login_page(client)
    assert cookie_a is not None and cookie_b is not None
    assert await post_login(client, cookie_b, token_a) == 403
    assert await post_login(client, cookie_a, token_b) == 403
    assert await post_login(client, cookie_a, "0" * 64) == 403


@pytest.mark.parametrize(
    "odd", ["", "short!", "a" * 129, 'quoted"value"'], ids=["empty", "bang", "long", "quoted"]
)
async def test_a_cookie_not_of_our_making_is_replaced(client: Client, odd: str) -> None:
    token, cookie = await login_page(client, odd)
    assert cookie is not None and cookie != odd
    assert await post_login(client, cookie, token) == 401


# -- security headers on what is not a page ------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["http", "behind-https"])
async def test_security_headers_on_pages_redirects_and_refusals(
    make_client: MakeClient, secure: bool
) -> None:
    client = await make_client(settings=WebSettings(secure_cookies=secure))
    page = await client.get("/login")
    redirect = await client.get("/account", allow_redirects=False)  # raised by the handler
    refused = await client.post("/login", data={"username": "x"})  # no token: CSRF's 403
    assert (page.status, redirect.status, refused.status) == (200, 303, 403)
    for response in (page, redirect, refused):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers.getall("Content-Security-Policy") == [headers["Content-Security-Policy"]]
        assert ("Strict-Transport-Security" in headers) is secure
    for response in (page, refused):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"


async def test_a_header_a_handler_set_itself_is_kept(client: Client) -> None:
    """The avatar route sets its own Content-Security-Policy; the front adds the others."""
    response = await client.get("/chat/avatar/nobody.svg")
    if response.status == 200:
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert len(response.headers.getall("Content-Security-Policy")) == 1
    assert response.headers["X-Frame-Options"] == "DENY"


# -- the HTTP histogram -----------------------------------------------------------------


def test_the_http_histogram_counts_as_prometheus_does() -> None:
    metrics = PrometheusMetrics()
    for seconds in (0.0004, 0.001, 0.003, 20.0):
        metrics.http_request("GET", "/login", 200, seconds)
    metrics.http_request("BREW", "/login", 405, 0.002)
    metrics.http_request("COFFEE", "/login", 405, 0.002)
    text = metrics.render().decode()
    name = "personabridge_http_request_duration_seconds"
    labels = 'method="GET",route="/login",status="200"'

    def value(sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
        assert match, sample
        return float(match.group(1))

    assert value(f'{name}_bucket{{le="0.001",{labels}}}') == 2  # a bound is inclusive
    assert value(f'{name}_bucket{{le="0.0025",{labels}}}') == 2
    assert value(f'{name}_bucket{{le="0.005",{labels}}}') == 3
    assert value(f'{name}_bucket{{le="10.0",{labels}}}') == 3
    assert value(f'{name}_bucket{{le="+Inf",{labels}}}') == 4
    assert value(f"{name}_count{{{labels}}}") == 4
    assert value(f"{name}_sum{{{labels}}}") == pytest.approx(20.0044)
    assert value(f"{name}_created{{{labels}}}") > 0
    # methods outside the standard ones are one label value: the series stay bounded
    other = 'method="OTHER",route="/login",status="405"'
    assert value(f"{name}_count{{{other}}}") == 2
    assert "BREW" not in text and "COFFEE" not in text


async def test_requests_are_counted_by_route_and_final_status(
    client: Client, metrics: PrometheusMetrics
) -> None:
    await client.get("/login")
    await client.get("/no/such/page")
    await client.get("/account", allow_redirects=False)
    await client.post("/login", data={})
    text = metrics.render().decode()
    name = "personabridge_http_request_duration_seconds_count"
    for labels in (
        'method="GET",route="/login",status="200"',
        'method="GET",route="unmatched",status="404"',
        'method="GET",route="/account",status="303"',
        'method="POST",route="/login",status="403"',
    ):
        assert f"{name}{{{labels}}} 1.0" in text, labels


# -- new anonymous cookie values ------------------------------------------------------------


def test_new_cookie_values_are_fresh_url_safe_tokens() -> None:
    pool = _CookiePool(batch=8)
    values = [pool.take() for _ in range(50)]  # several batches
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", value) for value in values)


def test_a_forked_worker_never_hands_out_the_parents_next_values() -> None:
    pool = _CookiePool(batch=8)
    pool.take()  # the pool now holds the next seven values
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        try:
            os.write(write, pool.take().encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        from_child = os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", from_child)
    assert from_child not in [pool.take() for _ in range(8)]
