"""The front wraps each route's handler rather than being an aiohttp middleware (issue
19): what aiohttp would answer bare without a middleware (no route, a route but not that
method, static files) still goes through the front, and contributed routes do too."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web
from yarl import URL

from adapters.web import PrometheusMetrics
from bot.adapter import WebRoute
from tests.support.web_client import Client, MakeClient

HISTOGRAM = "personabridge_http_request_duration_seconds_count"


def count(metrics: PrometheusMetrics, method: str, route: str, status: int) -> float:
    labels = f'method="{method}",route="{route}",status="{status}"'
    match = re.search(
        rf"^{HISTOGRAM}{{{re.escape(labels)}}} (\S+)$", metrics.render().decode(), re.M
    )
    return float(match.group(1)) if match else 0.0


def assert_security_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


async def test_the_app_has_no_middleware(client: Client) -> None:
    """No middleware, so aiohttp calls each (wrapped) handler directly."""
    assert len(client.app.middlewares) == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
async def test_a_path_no_route_has_gets_our_404(
    client: Client, metrics: PrometheusMetrics, method: str
) -> None:
    """Not a CSRF refusal for a POST either: no route means no check, as before."""
    response = await client.request(method, "/no/such/page", headers={"Accept": "text/html"})
    assert response.status == 404
    assert_security_headers(response)
    if method != "HEAD":
        assert "There is no page here" in await response.text()
    assert count(metrics, method, "unmatched", 404) == 1


async def test_our_scripts_get_json_for_a_missing_path(client: Client) -> None:
    response = await client.get("/chat/no-such-thing", headers={"Accept": "application/json"})
    assert response.status == 404
    assert "error" in await response.json()
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/healthz", "GET,HEAD"),
        ("PUT", "/login", "GET,HEAD,POST"),
        ("GET", "/logout", "POST"),
        ("DELETE", "/static/app.css", "GET,HEAD"),
    ],
)
async def test_a_route_without_that_method_gets_our_405_with_allow(
    client: Client, metrics: PrometheusMetrics, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers={"Accept": "text/html"})
    assert response.status == 405
    assert response.headers["Allow"] == allow
    assert "accept that kind of request" in await response.text()
    assert_security_headers(response)
    assert count(metrics, method, "unmatched", 405) == 1


async def test_static_files_are_served_with_get_and_head(
    client: Client, metrics: PrometheusMetrics
) -> None:
    got = await client.get("/static/app.css")
    assert got.status == 200 and got.content_type == "text/css"
    assert len(await got.read()) > 0
    assert_security_headers(got)
    head = await client.head("/static/app.css")
    assert head.status == 200 and await head.read() == b""
    assert count(metrics, "GET", "/static", 200) == 1
    assert count(metrics, "HEAD", "/static", 200) == 1


@pytest.mark.parametrize(
    "raw_path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fweb%2fapp.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/no-such-file.js",
    ],
)
async def test_nothing_outside_the_static_folder_is_served(client: Client, raw_path: str) -> None:
    response = await client.get(URL(raw_path, encoded=True), headers={"Accept": "text/html"})
    body = await response.text()
    assert response.status in (403, 404)
    assert "create_app" not in body and "root:" not in body
    assert_security_headers(response)


@pytest.mark.parametrize("path", ["/static/", "/static"])
async def test_the_static_folder_itself_is_not_listed(client: Client, path: str) -> None:
    response = await client.get(path, headers={"Accept": "text/html"})
    assert response.status == 403
    assert "chat.js" not in await response.text()
    assert_security_headers(response)


async def test_a_contributed_route_passes_the_front(
    make_client: MakeClient, metrics: PrometheusMetrics
) -> None:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(text="hook ok")

    async def failing(request: web.Request) -> web.Response:
        raise web.HTTPTooManyRequests(headers={"Retry-After": "3"})

    client = await make_client(
        extra_routes=[
            WebRoute("POST", "/hooks/exempt", hook, csrf_exempt=True),
            WebRoute("GET", "/hooks/limited", failing),
        ]
    )
    hooked = await client.post("/hooks/exempt", json={})
    assert hooked.status == 200 and await hooked.text() == "hook ok"
    assert_security_headers(hooked)
    assert count(metrics, "POST", "/hooks/exempt", 200) == 1
    limited = await client.get("/hooks/limited", headers={"Accept": "text/html"})
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    assert "Too many attempts" in await limited.text()
    assert_security_headers(limited)
    assert count(metrics, "GET", "/hooks/limited", 429) == 1
    wrong = await client.get("/hooks/exempt", headers={"Accept": "text/html"})
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"
    assert_security_headers(wrong)


async def test_an_oversized_body_to_a_contributed_route_is_refused(
    make_client: MakeClient,
) -> None:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="hook ok")

    client = await make_client(
        extra_routes=[WebRoute("POST", "/hooks/exempt", hook, csrf_exempt=True)],
        client_max_size=1024,
    )
    response = await client.post("/hooks/exempt", data=b"x" * 4096, headers={"Accept": "text/html"})
    assert response.status == 413
    assert_security_headers(response)


@pytest.mark.parametrize("target", ["*", "http://elsewhere.example/nope", "//nope"])
async def test_an_odd_request_target_gets_our_404(
    client: Client, metrics: PrometheusMetrics, target: str
) -> None:
    """``*`` (as in ``OPTIONS *``) matches no path pattern: the catch-all still takes it."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"OPTIONS {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 404")
    assert "Content-Security-Policy:" in head
    assert count(metrics, "OPTIONS", "unmatched", 404) == 1


async def test_head_works_where_get_does(client: Client) -> None:
    for path in ("/", "/login", "/signup", "/healthz"):
        got = await client.get(path)
        head = await client.head(path)
        assert (head.status, got.status) == (200, 200), path
        assert head.headers["Content-Type"] == got.headers["Content-Type"]
        assert_security_headers(head)
