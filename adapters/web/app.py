"""``create_app``: the aiohttp application of the web front end.

Pages (sign up, log in, account, chat), operations (``/healthz``, ``/metrics``), static
files, and routes that other adapters contribute (the Telegram webhook, Discord
interactions): they arrive as ``extra_routes`` (:class:`bot.adapter.WebRoute`) and pass
the same error handling and security headers. A contributed route that authenticates
its requests another way (a signature, a secret header) says ``csrf_exempt=True``;
every other POST needs a CSRF token.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from adapters.web import (
    routes_account,
    routes_auth,
    routes_avatar,
    routes_chat,
    routes_ops,
    routes_voice,
)
from adapters.web.background import ReplyTasks
from adapters.web.csrf import csrf_exempt
from adapters.web.health import HEALTH_TTL, StoreHealth
from adapters.web.keys import (
    ACCOUNTS,
    ADAPTER_HEALTH,
    ENGINE,
    HEALTH,
    METRICS,
    OPTIONS,
    PAGE_CACHE,
    REPLY_TASKS,
    SETTINGS,
    SIGNUP_LIMITER,
    TEMPLATES,
    WebOptions,
)
from adapters.web.metrics import PrometheusMetrics
from adapters.web.middleware import Front
from adapters.web.pagecache import PageCache
from adapters.web.proxies import TrustedProxies
from adapters.web.render import build_templates
from adapters.web.routing import add_routes, add_static, add_unmatched
from auth import AccountService
from bot.adapter import WebRoute
from bot.config import WebSettings
from bot.engine import Engine
from bot.health import AdapterHealth
from bot.limits import RateLimiter
from bot.store.base import StoreUpkeep

STATIC_DIR = Path(__file__).parent / "static"
#: Bodies above this are refused with 413: forms and chat messages are small.
MAX_BODY = 64 * 1024


def create_app(
    engine: Engine,
    accounts: AccountService,
    *,
    upkeep: StoreUpkeep,
    settings: WebSettings | None = None,
    metrics: PrometheusMetrics | None = None,
    telegram_bot_username: str | None = None,
    extra_routes: Sequence[WebRoute] = (),
    client_max_size: int = MAX_BODY,
    signups_per_hour: int = 20,
    health_ttl: float = HEALTH_TTL,
    health: AdapterHealth | None = None,
) -> web.Application:
    """Build the web application.

    ``metrics`` should be the instance the engine counts into (so ``/metrics`` shows
    the engine's figures too); a fresh one is made when it is None. ``settings`` is
    read for ``secure_cookies`` (Secure, ``__Host-`` cookies and HSTS, behind HTTPS)
    and ``trusted_proxies`` (whose forwarded header gives the client's address), and kept
    for :class:`~adapters.web.adapter.WebAdapter`, which serves the app. A chat message
    may be as long as the engine takes (``ENGINE__MAX_MESSAGE_CHARS``).
    """
    settings = settings or WebSettings()
    options = WebOptions(
        secure_cookies=settings.secure_cookies,
        telegram_bot_username=(telegram_bot_username or "").lstrip("@") or None,
        chat_max_chars=engine.settings.max_message_chars,
        signups_per_hour=signups_per_hour,
    )
    proxies = TrustedProxies(settings.trusted_proxies, header=settings.forwarded_header)
    metrics = metrics if metrics is not None else PrometheusMetrics()
    front = Front(
        metrics=metrics,
        body_timeout=settings.body_timeout,
        proxies=proxies or None,
        secure=settings.secure_cookies,
    )
    # No middleware: every route's handler is wrapped in the front instead (see
    # adapters.web.routing for why, and for static files and unmatched requests).
    app = web.Application(client_max_size=client_max_size)
    app[ENGINE] = engine
    app[SETTINGS] = settings
    app[ACCOUNTS] = accounts
    app[OPTIONS] = options
    app[METRICS] = metrics
    app[TEMPLATES] = build_templates()
    app[PAGE_CACHE] = PageCache()
    app[HEALTH] = StoreHealth(upkeep, ttl=health_ttl)
    app[ADAPTER_HEALTH] = health if health is not None else AdapterHealth()
    app[REPLY_TASKS] = tasks = ReplyTasks()
    app[routes_avatar.AVATARS] = {}
    app[routes_voice.CLIPS] = OrderedDict()
    app[routes_voice.SYNTHESES] = routes_voice.synthesis_limiter()
    app[SIGNUP_LIMITER] = RateLimiter(
        per_second=signups_per_hour / 3600, burst=max(1, signups_per_hour)
    )
    modules = (routes_auth, routes_account, routes_chat, routes_voice, routes_avatar, routes_ops)
    for module in modules:
        add_routes(app.router, front, module.routes)
    add_static(app.router, front, "/static", STATIC_DIR, name="static")
    for route in extra_routes:
        app.router.add_route(route.method, route.path, front.wrap(_handler(route)))
    add_unmatched(app.router, front)  # last

    async def finish_replies(app: web.Application) -> None:
        await tasks.close()

    app.on_cleanup.append(finish_replies)
    return app


def _handler(route: WebRoute) -> Handler:
    """The contributed route's handler, marked for the CSRF check when it is exempt (on
    a function of our own: the adapter's handler may be a bound method)."""
    if not route.csrf_exempt:
        return route.handler
    contributed = route.handler

    async def exempt(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await contributed(request)
        return response

    return csrf_exempt(exempt)
