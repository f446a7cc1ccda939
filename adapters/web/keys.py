"""What the web app keeps on the application and on each request, under typed keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
from aiohttp import web

from adapters.web.background import ReplyTasks
from adapters.web.health import StoreHealth
from adapters.web.metrics import PrometheusMetrics
from adapters.web.pagecache import PageCache
from auth import AccountService
from bot.config import WebSettings
from bot.engine import Engine
from bot.health import AdapterHealth
from bot.limits import RateLimiter
from bot.store.base import Account

_BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


@dataclass(frozen=True, slots=True)
class WebOptions:
    """How this web front end behaves; built once by :func:`~adapters.web.app.create_app`."""

    secure_cookies: bool = False
    #: The Telegram bot's username (without ``@``), for ``t.me`` deep links.
    telegram_bot_username: str | None = None
    #: The longest chat message accepted, in characters: the engine's
    #: ``ENGINE__MAX_MESSAGE_CHARS``, so the page refuses what the engine would.
    chat_max_chars: int = 4096
    #: New accounts one address may create per hour (a burst of as many is allowed).
    signups_per_hour: int = 20

    def __post_init__(self) -> None:
        name = self.telegram_bot_username
        if name is not None and not _BOT_USERNAME.fullmatch(name):
            raise ValueError(f"not a Telegram bot username: {name!r}")

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless it is Secure,
        # host-only and for path /, so a sibling subdomain cannot plant one.
        return "__Host-pb_session" if self.secure_cookies else "pb_session"

    @property
    def device_cookie(self) -> str:
        """The device token of the last account logged in from this browser."""
        return "__Host-pb_device" if self.secure_cookies else "pb_device"

    @property
    def csrf_cookie(self) -> str:
        return "__Host-pb_csrf" if self.secure_cookies else "pb_csrf"


ENGINE = web.AppKey("engine", Engine)
#: The ``WEB__*`` settings the app was built with (the server's host and port too).
SETTINGS = web.AppKey("settings", WebSettings)
ACCOUNTS = web.AppKey("accounts", AccountService)
OPTIONS = web.AppKey("options", WebOptions)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
METRICS = web.AppKey("metrics", PrometheusMetrics)
PAGE_CACHE = web.AppKey("page_cache", PageCache)
#: Chat replies in flight, owned by the app (awaited at shutdown).
REPLY_TASKS = web.AppKey("reply_tasks", ReplyTasks)
#: The store's health for /healthz (a cached read-and-write probe).
HEALTH = web.AppKey("health", StoreHealth)
#: What every adapter of this process is doing, for /healthz.
ADAPTER_HEALTH = web.AppKey("adapter_health", AdapterHealth)
#: New accounts per client address: each costs a password hash.
SIGNUP_LIMITER = web.AppKey("signup_limiter", RateLimiter)

#: The account of the request's session, once looked up (None: not logged in).
ACCOUNT = web.RequestKey[Account | None]("account")
#: A CSRF cookie value minted for this request, to be set on its response.
NEW_CSRF_COOKIE = web.RequestKey("new_csrf_cookie", str)
