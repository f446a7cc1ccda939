"""Deadlines for slow clients: a request's headers, then its body, must arrive in time.

aiohttp closes a connection that sends nothing for ``keepalive_timeout``, but a client
sending a byte every few seconds keeps one open for ever (slowloris), and a handler
reading a body waits as long as the body trickles in. So:

- :class:`DeadlineRunner` wraps each connection's protocol in :class:`HeadDeadline`:
  once the first byte of a request's headers arrives, the headers must be complete
  within ``header_timeout`` seconds or the connection is closed;
- the front (:class:`~adapters.web.middleware.Front`, first thing for every request)
  marks the head received and gives a request's body ``body_timeout`` seconds from the
  end of its headers, with :func:`cut_if_unread`; a body still incomplete then
  closes the connection (the handler sees the connection reset, which the error
  handler answers quietly).

Idle keep-alive connections are left to aiohttp's ``keepalive_timeout`` (behind a load
balancer it must exceed the balancer's idle timeout, so it is not shortened here).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class HeadDeadline(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline on each request's head.

    A proxy rather than a subclass: aiohttp builds its protocol itself. The front
    middleware calls :meth:`head_received` (it finds this object through
    ``request.transport.get_protocol()``) and :meth:`request_finished`.

    The first byte of a request's head notes the time; one timer per connection checks
    it, and is re-armed only when it fires while a head is still arriving. (A timer per
    request, made and cancelled for every request, cost more than the rest of this
    class put together.)"""

    def __init__(self, inner: Any, timeout: float):
        self._inner = inner
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        #: When the head of the request now arriving began to arrive (None: no head is).
        self._since: float | None = None
        self._busy = False
        self._transport: asyncio.BaseTransport | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data and not self._busy and self._since is None:
            self._since = now = self._loop.time()
            if self._timer is None:
                self._timer = self._loop.call_at(now + self._timeout, self._check)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def head_received(self) -> None:
        self._since = None
        self._busy = True

    def request_finished(self) -> None:
        self._busy = False

    def _check(self) -> None:
        self._timer = None
        since = self._since
        if since is None or self._busy:
            return  # no head arriving: the next one's first byte arms the timer again
        deadline = since + self._timeout
        if self._loop.time() < deadline:  # a later request's head: wait for its deadline
            self._timer = self._loop.call_at(deadline, self._check)
        elif self._transport is not None:
            log.info("closed a connection whose request headers took over %gs", self._timeout)
            self._transport.close()


class _DeadlineFactory:
    """The protocol factory the listening socket calls: aiohttp's, wrapped."""

    def __init__(self, server: web.Server, header_timeout: float):
        self._server = server
        self._timeout = header_timeout

    def __call__(self) -> HeadDeadline:
        return HeadDeadline(self._server(), self._timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class DeadlineRunner(web.AppRunner):
    """An ``AppRunner`` whose sites give every request's headers ``header_timeout``."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    @property
    def server(self) -> web.Server | None:
        server = super().server
        if server is None:
            return None
        return _DeadlineFactory(server, self._header_timeout)  # type: ignore[return-value]


def cut_if_unread(request: web.BaseRequest) -> None:
    """Close the connection of a request whose body has still not all arrived."""
    if request.content.is_eof() or request.transport is None:
        return
    log.info("closed a connection whose request body took over the time allowed")
    request.transport.close()
