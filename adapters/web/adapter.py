"""``WebAdapter``: the web front end as an adapter that ``bot.app`` starts and stops.

Entering it starts an aiohttp ``AppRunner`` and a ``TCPSite`` on the configured host
and port, on the running event loop beside the other adapters (never
``web.run_app``, which would want the loop to itself); leaving it stops them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Self

from aiohttp import web

from adapters.web.app import MAX_BODY, create_app
from adapters.web.deadlines import DeadlineRunner
from adapters.web.metrics import PrometheusMetrics
from adapters.web.proxies import ClientAddressLogger
from auth import AccountService
from bot.config import WebSettings
from bot.engine import Engine

log = logging.getLogger(__name__)


class WebAdapter:
    """Serves the web pages (and contributed routes) while entered.

    ``port`` is the bound port once started, also when ``settings.port`` is 0 (an
    ephemeral port, for tests).
    """

    name = "web"

    def __init__(
        self,
        engine: Engine,
        accounts: AccountService,
        settings: WebSettings,
        *,
        metrics: PrometheusMetrics | None = None,
        telegram_bot_username: str | None = None,
        extra_routes: Sequence[web.AbstractRouteDef] = (),
        client_max_size: int = MAX_BODY,
        access_log: bool = True,
        reuse_port: bool = False,
        shutdown_timeout: float = 10.0,
    ):
        self.settings = settings
        self.app = create_app(
            engine,
            accounts,
            settings=settings,
            metrics=metrics,
            telegram_bot_username=telegram_bot_username,
            extra_routes=extra_routes,
            client_max_size=client_max_size,
        )
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
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = _bound_port(runner)
        log.info("web server listening on %s", self.url)
        return self

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
