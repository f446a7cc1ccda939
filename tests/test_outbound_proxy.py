"""The proxy for an outgoing URL, from the environment's variables (as httpx and curl
read them), looked up once per host."""

from __future__ import annotations

import pytest

from bot.outbound_proxy import OutboundProxy

PROXIES = {
    "https": "http://proxy.example:3128",
    "http": "http://plain-proxy.example:8080",
    "no": "localhost, .internal.example,10.0.0.5:8000",
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com/v1", "http://proxy.example:3128"),
        ("http://llm.example/v1", "http://plain-proxy.example:8080"),
        ("http://localhost:11434/v1", None),
        ("https://gpu.internal.example/v1", None),  # a domain in NO_PROXY
        ("https://internal.example/v1", None),  # the domain itself
        ("https://notinternal.example/v1", "http://proxy.example:3128"),  # not a subdomain
        ("http://10.0.0.5:8000/v1", None),  # NO_PROXY's port is ignored, as curl does
        ("HTTPS://API.OPENAI.COM/v1", "http://proxy.example:3128"),
    ],
)
def test_the_proxy_of_a_url(url: str, expected: str | None) -> None:
    assert OutboundProxy(PROXIES).for_url(url) == expected


def test_all_proxy_serves_schemes_without_their_own_and_star_bypasses_everything() -> None:
    assert (
        OutboundProxy({"all": "socks5://s:1080"}).for_url("https://a.example") == "socks5://s:1080"
    )
    assert OutboundProxy({"https": "http://p:1", "no": "*"}).for_url("https://a.example") is None
    assert OutboundProxy({}).for_url("https://a.example") is None


def test_the_environment_is_read_when_nothing_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    proxy = OutboundProxy()
    assert proxy.for_url("https://api.telegram.org/bot1/getMe") == "http://env-proxy.example:3128"
    assert proxy.for_url("http://127.0.0.1:8081/bot1/getMe") is None


def test_hosts_are_remembered_within_a_bound() -> None:
    proxy = OutboundProxy(PROXIES)
    for n in range(1000):
        proxy.for_url(f"https://host{n}.example/")
    assert len(proxy._by_host) <= 64
    assert proxy.for_url("https://host999.example/") == "http://proxy.example:3128"
