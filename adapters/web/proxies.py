"""The client's real address behind trusted reverse proxies (a load balancer).

Behind a proxy, the peer of every request is the proxy, so anything keyed on the peer
(login and sign-up throttles, logs) would put every user in one bucket. A proxy passes
the address it saw in ``X-Forwarded-For`` (or ``Forwarded``), appending to what the
client sent; so the header is read from the right: the right-most address that is not a
trusted proxy is the client. Everything left of it was written by the client and is
never believed. A peer that is not a trusted proxy is the client itself, whatever
headers it sends.

Only the header the proxy writes is read (``WEB__FORWARDED_HEADER``): a proxy that
appends to ``X-Forwarded-For`` passes a ``Forwarded`` header from the client untouched,
and believing that one would let the client choose its address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger
from multidict import CIMultiDictProxy

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Forwarded-header names as the setting spells them.
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")
#: Most hops read from a header: a longer chain is cut (its left end is the client's).
MAX_HOPS = 32

#: The resolved client address, kept on the request aiohttp logs (the handlers get a
#: clone whose ``remote`` is already the resolved address).
CLIENT_ADDRESS = web.RequestKey("client_address", str)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDR networks; ValueError names one that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {value!r}") from exc
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """An address from one hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port (an IPv6 address has several colons)
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for(header: str, values: Sequence[str]) -> list[str]:
    """The hops named by every ``header`` line, in order (left: nearest the client)."""
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            if header == "forwarded":
                for pair in element.split(";"):
                    name, _, hop = pair.strip().partition("=")
                    if name.strip().lower() == "for":
                        hops.append(hop)
            else:
                hops.append(element)
    return hops[-MAX_HOPS:]


class TrustedProxies:
    """Which peers' forwarded headers are believed, and the client address they give."""

    def __init__(self, networks: Iterable[str] = (), *, header: str = "x-forwarded-for"):
        if header not in FORWARDED_HEADERS:
            raise ValueError(f"forwarded header must be one of {FORWARDED_HEADERS}")
        self.networks = parse_networks(networks)
        self.header = header

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def client_address(self, peer: str | None, headers: CIMultiDictProxy[str] | None = None) -> str:
        """The client's address for a request from ``peer`` with its ``headers``."""
        if peer is None:
            return "unknown"
        nearest = _address(peer)
        if nearest is None or not self.trusts(nearest) or headers is None:
            return peer
        hops = forwarded_for(self.header, headers.getall(self.header, ()))
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:  # garbage: the chain cannot be followed past it
                break
            nearest = address
            if not self.trusts(address):
                break
        return str(nearest)


def resolve_client(request: web.Request, proxies: TrustedProxies) -> web.Request:
    """The request as handlers see it: with the client's address as ``request.remote``
    (called first for every request by
    :class:`~adapters.web.middleware.Front`, so every later step, throttles,
    logs and metrics, sees the client's address)."""
    address = proxies.client_address(request.remote, request.headers)
    request[CLIENT_ADDRESS] = address
    if address != request.remote:
        request = request.clone(remote=address)
    return request


class _AsLogged:
    """A request as the access log sees it: its ``remote`` is the resolved client."""

    def __init__(self, request: web.BaseRequest, remote: str):
        self._request = request
        self.remote = remote

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class ClientAddressLogger(AccessLogger):
    """aiohttp's access log, with the resolved client address as ``%a``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        address = request.get(CLIENT_ADDRESS) if request is not None else None
        if address is not None and address != request.remote:
            request = _AsLogged(request, address)  # type: ignore[assignment]
        super().log(request, response, time)
