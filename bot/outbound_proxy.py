"""The proxy the environment names for an outgoing URL, looked up in Python once.

``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case), as httpx
and curl read them. aiohttp reads them itself only with ``trust_env``, and then on
every request, in a thread, together with ``~/.netrc`` (whose login it would add to
requests that carry their own): so our aiohttp clients keep ``trust_env`` off and ask
here instead, once per host.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

#: Distinct (scheme, host) pairs remembered; a client talks to one or two.
_REMEMBERED = 64


class OutboundProxy:
    """``for_url(url)``: the proxy URL to send ``url`` through, or None (directly)."""

    def __init__(self, proxies: dict[str, str] | None = None) -> None:
        self._proxies = urllib.request.getproxies() if proxies is None else proxies
        self._by_host: dict[tuple[str, str], str | None] = {}

    def for_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key in self._by_host:
            return self._by_host[key]
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all") or None
        if proxy and parts.hostname and self._bypassed(parts.hostname):
            proxy = None
        if len(self._by_host) >= _REMEMBERED:
            self._by_host.clear()
        self._by_host[key] = proxy
        return proxy

    def _bypassed(self, host: str) -> bool:
        """Whether ``NO_PROXY`` names the host: ``*``, the host itself, or a domain
        it is in (``example.org`` and ``.example.org`` both cover ``a.example.org``)."""
        host = host.lower()
        for entry in self._proxies.get("no", "").split(","):
            name = entry.strip().lower().lstrip(".").rsplit(":", 1)[0]
            if name == "*" or (name and (host == name or host.endswith("." + name))):
                return True
        return False
