"""What the wiring knows of a front end: :class:`Adapter`, and :class:`PlatformAdapter`
with the :class:`WebRoute` values it contributes to the web server (a webhook, an
interactions endpoint).

A route is declared here, in the core's words, so that a platform adapter needs neither
the web adapter nor aiohttp's route types to offer one, and the web adapter needs no
convention (an attribute on a function) to learn how a route authenticates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

#: A request handler of the web server: an aiohttp ``Request`` in, a ``StreamResponse``
#: out (the core names no aiohttp type; the web adapter, which serves it, does).
WebHandler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WebRoute:
    """One route a platform adapter asks the web server to serve."""

    method: Literal["GET", "POST"]
    path: str
    handler: WebHandler
    #: The handler authenticates its requests itself (a signature, a secret header), so
    #: the web's CSRF check, made for browser forms, does not apply to it.
    csrf_exempt: bool = False


class Adapter(Protocol):
    """A front end. Entering it starts it (connects, listens); leaving it stops it."""

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class PlatformAdapter(Adapter, Protocol):
    """An adapter that may contribute routes to the web server (webhooks)."""

    def web_routes(self) -> Sequence[WebRoute]: ...
