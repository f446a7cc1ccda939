"""``TelegramAdapter``: python-telegram-bot's Application, run on the shared event loop.

Entering the adapter initialises PTB (``getMe``: the bot's id and username), registers
the command list (``setMyCommands``) and starts receiving:

* polling: PTB's updater long-polls ``getUpdates`` (it removes any webhook first);
* webhook: ``setWebhook(WEB__PUBLIC_URL + webhook_path, secret_token=…)``; Telegram's
  POSTs arrive on the web adapter's server through :meth:`TelegramAdapter.web_routes`,
  are checked for the ``X-Telegram-Bot-Api-Secret-Token`` header (403 otherwise) and
  queued for PTB. The webhook is left set on exit: other workers may still serve it,
  and Telegram keeps updates for a restarted one.

Leaving it stops receiving, lets the updates in progress finish, and shuts PTB down.
Never ``run_polling()``/``run_webhook()``: those want the event loop to themselves.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import secrets
from typing import Any, Self

from aiohttp import web
from telegram import BotCommand, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from adapters.telegram.albums import AlbumCollector
from adapters.telegram.delivery import Outbox, Target
from adapters.telegram.handlers import PLATFORM, BotIdentity, UpdateHandler, is_id
from adapters.telegram.options import TelegramOptions
from adapters.telegram.ordering import ChatOrderedProcessor
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.settings import TelegramSettings
from adapters.telegram.transport import AiohttpRequest
from adapters.telegram.voice import VoiceSender
from bot.adapter import WebRoute
from bot.commands import COMMANDS
from bot.config import WebSettings, shown_url
from bot.engine import Engine
from bot.errors import ConfigError, PlatformUnreachable, StoreError
from bot.inbox import Inbox
from bot.messages import Identity
from bot.store.base import EventStore, InboxEntry

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header's name
#: New messages, and the buttons under the bot's replies being pressed; asking for
#: nothing else spares the traffic.
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
#: The largest webhook body taken, once the secret is right. Telegram's largest updates
#: (a 4,096-character text with its entities, quoting a reply of as much, in UTF-8) can
#: pass the web server's 64 KiB limit for every other body.
MAX_UPDATE_BYTES = 1024 * 1024
#: Telegram keeps an undelivered update for 24 hours: ids are remembered a little longer.
KEEP_UPDATE_IDS = 25 * 3600.0
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")

TgApplication = Application[Any, Any, Any, Any, Any, Any]


class TelegramAdapter:
    """The Telegram front end. An async context manager: entered, it receives and
    answers; ``username`` is the bot's username once started (for t.me deep links)."""

    name = "telegram"

    def __init__(
        self,
        engine: Engine,
        settings: TelegramSettings,
        web_settings: WebSettings,
        options: TelegramOptions | None = None,
        *,
        events: EventStore | None = None,
    ):
        """``events`` keeps the webhook's updates (its inbox) and their ids: needed in
        webhook mode, unused when polling."""
        # PTB 22.2 began moving time periods (RetryAfter.retry_after, …) from int
        # seconds to timedelta and warns on every use until a process opts in; this
        # adapter reads them either way (delivery.retry_after_seconds), so it opts in,
        # unless the operator has decided otherwise.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        if settings.token is None or not settings.token.get_secret_value():
            raise ConfigError("PERSONABRIDGE_TELEGRAM__TOKEN is not set")
        self._token = settings.token.get_secret_value()
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value() if secret else secrets.token_urlsafe(32)
        if secret is None and settings.mode == "webhook":
            log.info(
                "telegram webhook secret generated for this process; set "
                "PERSONABRIDGE_TELEGRAM__WEBHOOK_SECRET when several workers serve the webhook"
            )
        if not _SECRET_SHAPE.fullmatch(self._secret):
            raise ConfigError(
                "PERSONABRIDGE_TELEGRAM__WEBHOOK_SECRET: 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        self.settings = settings
        self.options = options or TelegramOptions()
        self.mode = settings.mode
        self.webhook_url = web_settings.base_url + settings.webhook_path
        self._api = settings.api_base_url.rstrip("/")
        self._engine = engine
        self._pacer = ChatPacer()
        self.application: TgApplication | None = None
        self._handler: UpdateHandler | None = None
        self._requests: list[AiohttpRequest] = []
        self._outbox: Outbox | None = None
        self.username: str | None = None
        self.inbox: Inbox | None = None
        if self.mode == "webhook":
            if events is None:
                raise ValueError("the Telegram webhook needs an event store (events=)")
            self.inbox = Inbox(
                events,
                "telegram",
                hold=settings.inbox_hold_seconds,
                sweep=settings.inbox_sweep_seconds,
                keep=KEEP_UPDATE_IDS,
            )
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    def _build(self) -> TgApplication:
        options = self.options
        main_request = AiohttpRequest(
            connection_pool_size=options.connection_pool_size, pool_timeout=options.pool_timeout
        )
        polling_request: AiohttpRequest | None = None
        albums = AlbumCollector()
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(f"{self._api}/bot")
            .base_file_url(f"{self._api}/file/bot")
            .concurrent_updates(
                ChatOrderedProcessor(
                    self.settings.max_concurrent_updates,
                    max_queued=options.max_queued_per_chat,
                    albums=albums,
                )
            )
            .request(main_request)
            .job_queue(None)
        )
        if self.mode == "webhook":
            builder = builder.updater(None)
        else:
            # One connection for the long poll, whose HTTP read must outlast the poll.
            polling_request = AiohttpRequest(
                connection_pool_size=1, read_timeout=options.poll_timeout + 10
            )
            builder = builder.get_updates_request(polling_request)
        app: TgApplication = builder.build()
        self._requests = [r for r in (main_request, polling_request) if r is not None]
        outbox = Outbox(app.bot, self._pacer, self.settings, options)
        self._outbox = outbox
        voice = VoiceSender(app.bot, self._engine.speech, self._pacer, self.settings)
        self._handler = UpdateHandler(
            self._engine, outbox, self._pacer, self.settings, options, albums=albums, voice=voice
        )
        self._handler.inbox = self.inbox
        app.add_handler(TypeHandler(Update, self._handler))
        app.add_error_handler(_on_error)
        return app

    async def __aenter__(self) -> Self:
        app = self._build()
        try:
            try:
                await app.initialize()
            except InvalidToken as exc:
                raise ConfigError("PERSONABRIDGE_TELEGRAM__TOKEN: Telegram refused it") from exc
            except NetworkError as exc:  # also TimedOut; a refused token is InvalidToken
                where = shown_url(self._api)
                raise PlatformUnreachable(f"cannot reach Telegram at {where}: {exc}") from exc
            assert self._handler is not None
            self._handler.me = BotIdentity(app.bot.id, app.bot.username)
            self.username = app.bot.username
            await self._register_commands(app)
            await app.start()
            # From here the webhook route takes updates: it must before setWebhook, or
            # Telegram's first deliveries would meet a 503 and be retried much later.
            self.application = app
            await self._start_receiving(app)
            if self.inbox is not None:  # updates acknowledged by a worker that died
                self._sweeper = asyncio.create_task(
                    self.inbox.run(self._answer_again), name="telegram inbox"
                )
        except BaseException:
            self.application = None
            await self._close(app)
            raise
        self._engine.notices.register(PLATFORM, self.send_notice)
        log.info("telegram adapter started as @%s (%s)", self.username, self.mode)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._engine.notices.unregister(PLATFORM)
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        app, self.application = self.application, None
        if app is not None:
            await self._close(app)

    async def _answer_again(self, entry: InboxEntry) -> None:
        """Queue an update taken from the inbox (acknowledged, never answered)."""
        app = self.application
        if app is None:
            return
        try:
            update = Update.de_json(json.loads(entry.payload), app.bot)
        except Exception:  # stored only after it parsed once: a bug, not the sender's
            log.exception("telegram update %s in the inbox is unreadable", entry.event_id)
            assert self.inbox is not None
            await self.inbox.finish(entry.event_id)
            return
        await app.update_queue.put(update)

    async def send_notice(self, identity: Identity, text: str) -> None:
        """Tell a person privately about their account (their private chat with the
        bot has their user id), as plain text."""
        outbox = self._outbox
        if outbox is None or self.application is None:
            raise RuntimeError("the Telegram adapter is not running")
        target = Target(chat_id=int(identity.user_id), private=True)
        await outbox.send(target, text, html=False, quote=False, must_arrive=True)

    async def _close(self, app: TgApplication) -> None:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        # PTB shuts down only what initialize() completed: after a failed start our
        # transports' sessions would stay open ("Unclosed client session").
        for request in self._requests:
            await request.shutdown()

    async def _register_commands(self, app: TgApplication) -> None:
        commands = [
            BotCommand(c.name, (f"{c.args} — " if c.args else "") + c.description[:200])
            for c in COMMANDS
        ]
        try:
            await app.bot.set_my_commands(commands)
        except TelegramError as exc:  # the bot works without the menu
            log.warning("setMyCommands failed: %s", exc)

    async def _start_receiving(self, app: TgApplication) -> None:
        if app.updater is not None:
            await app.updater.start_polling(
                timeout=int(self.options.poll_timeout), allowed_updates=list(ALLOWED_UPDATES)
            )
            return
        try:
            await app.bot.set_webhook(
                self.webhook_url, secret_token=self._secret, allowed_updates=list(ALLOWED_UPDATES)
            )
        except BadRequest as exc:
            raise ConfigError(
                f"PERSONABRIDGE_WEB__PUBLIC_URL: Telegram refused the webhook "
                f"{self.webhook_url}: {exc}"
            ) from exc

    # -- webhook ----------------------------------------------------------------------

    def web_routes(self) -> list[WebRoute]:
        """The webhook route for the web adapter's server; none in polling mode.
        Authenticated by the secret header, not by a CSRF token."""
        if self.mode != "webhook":
            return []
        return [WebRoute("POST", self.settings.webhook_path, self._receive, csrf_exempt=True)]

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        # Constant time, on bytes: header bytes that are not UTF-8 arrive as surrogates
        # (surrogateescape), which a plain encode() would turn into a 500.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret.encode()):
            return web.Response(status=403, text="forbidden")
        app = self.application
        if app is None or not app.running:
            # Not started yet, or stopping: Telegram tries again later.
            return web.Response(status=503, text="not ready")
        request = request.clone(client_max_size=MAX_UPDATE_BYTES)
        try:
            # kept as it came for the inbox (Telegram sends UTF-8): not written out again
            body = (await request.read()).decode("utf-8")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("an update is a JSON object")
            update = Update.de_json(data, app.bot)
        except web.HTTPException:
            raise  # aiohttp's own answer, such as 413 for a body over the limit
        except Exception as exc:
            # PTB's parser raises whatever a field's shape provokes (AttributeError for a
            # string where an object belongs, OverflowError for a date out of range, ...):
            # any of them means "not an update", never a 500.
            log.warning("telegram: refused an unreadable update (%s)", type(exc).__name__)
            return web.Response(status=400, text="not an update")
        if self.inbox is not None and is_id(data.get("update_id")):
            # acknowledged only once stored: Telegram never resends an answered update
            try:
                fresh = await self.inbox.accept(str(data["update_id"]), body)
            except StoreError as exc:
                log.warning("telegram: an update could not be stored, not taken (%s)", exc)
                return web.Response(status=503, text="try again")
            if not fresh:
                log.info("telegram update %s was delivered again; ignored", data["update_id"])
                return web.Response()
        await app.update_queue.put(update)
        return web.Response()


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one place an update's unexpected failure ends: logged, without its text."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("telegram update %s failed", update_id, exc_info=context.error)


def build_telegram_adapter(
    engine: Engine,
    settings: TelegramSettings,
    web: WebSettings,
    options: TelegramOptions | None = None,
    *,
    events: EventStore | None = None,
) -> TelegramAdapter:
    """The Telegram adapter for ``bot.app``; ConfigError when it cannot work as set.
    ``events``: see :class:`TelegramAdapter`."""
    return TelegramAdapter(engine, settings, web, options, events=events)
