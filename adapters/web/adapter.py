"""``WebAdapter``: the web front end as an adapter that ``bot.app`` starts and stops.

It serves an application built by :func:`~adapters.web.app.create_app` (which takes
everything the pages need). Entering it starts an aiohttp ``AppRunner`` and a
``TCPSite`` on the host and port of the app's settings, on the running event loop beside
the other adapters (never ``web.run_app``, which would want the loop to itself); leaving
it stops them.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any, Self

from aiohttp import web

from adapters.web.deadlines import DeadlineRunner
from adapters.web.keys import SETTINGS
from adapters.web.proxies import ClientAddressLogger
from bot.errors import ConfigError

log = logging.getLogger(__name__)


class WebAdapter:
    """Serves ``app`` (from :func:`~adapters.web.app.create_app`) while entered.

    ``port`` is the bound port once started, also when ``WEB__PORT`` is 0 (an
    ephemeral port, for tests). ``reuse_port`` lets several workers bind the port.
    """

    name = "web"

    def __init__(
        self,
        app: web.Application,
        *,
        access_log: bool = True,
        reuse_port: bool = False,
        shutdown_timeout: float = 10.0,
    ):
        self.app = app
        self.settings = app[SETTINGS]
        self._access_log = access_log
        self._reuse_port = reuse_port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """Where this server answers (loopback when it listens on every address)."""
        if self.port is None:
            raise RuntimeError("the web adapter is not started")
        host = self.settings.host
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        timeouts: dict[str, Any] = {
            "shutdown_timeout": self._shutdown_timeout,
            "header_timeout": self.settings.header_timeout,
        }
        if self._access_log:  # with the client's address behind trusted proxies
            runner = DeadlineRunner(self.app, access_log_class=ClientAddressLogger, **timeouts)
        else:  # access_log=None switches aiohttp's access log off
            runner = DeadlineRunner(self.app, access_log=None, **timeouts)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.settings.host, self.settings.port, reuse_port=self._reuse_port or None
            )
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise self._listen_error(exc) from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = _bound_port(runner)
        log.info("web server listening on %s", self.url)
        return self

    def _listen_error(self, exc: OSError) -> ConfigError:
        """A setting's fault, said in one line naming it (the port taken, the host
        unknown or not this machine's), instead of a traceback."""
        host, port = self.settings.host, self.settings.port
        if isinstance(exc, socket.gaierror):
            return ConfigError(f"PERSONABRIDGE_WEB__HOST: cannot resolve {host!r} ({exc.strerror})")
        if exc.errno == errno.EADDRINUSE:
            return ConfigError(f"PERSONABRIDGE_WEB__PORT: {port} is already in use")
        if exc.errno == errno.EACCES:
            return ConfigError(
                f"PERSONABRIDGE_WEB__PORT: no permission to listen on {port} "
                "(ports below 1024 need privileges)"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return ConfigError(
                f"PERSONABRIDGE_WEB__HOST: {host!r} is not an address of this machine"
            )
        reason = exc.strerror or str(exc)
        return ConfigError(
            f"PERSONABRIDGE_WEB__HOST/PORT: cannot listen on {host}:{port}: {reason}"
        )

    async def __aexit__(self, *exc_info: object) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.port = None


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the web server is bound to no TCP port")
