"""Wiring: the one place that knows every concrete class.

``Settings -> store, backends, personas, engine, enabled adapters``. :class:`PersonaBridge`
owns them as one async context manager, with the background work they need (the purge
of expired link codes and sessions, reloading persona cards that change); ``serve``
starts every enabled adapter on the current event loop and serves until stopped (an
adapter whose platform is unreachable is retried in the background meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Self

from bot.adapter import Adapter, PlatformAdapter
from bot.app_settings import Settings
from bot.backends.base import Backend, Startable
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.backends.prompt import DEFAULT_REPLY_TOKENS, DEFAULT_SYSTEM_PROMPT, PromptOptions
from bot.backoff import Backoff
from bot.config import DEFAULT_OPENAI_BASE_URL
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.errors import ConfigError, PlatformUnreachable, StoreError
from bot.health import AdapterHealth
from bot.media import MediaProcessor
from bot.metrics import Metrics
from bot.persona_loading import load_personas
from bot.persona_watch import PersonaWatcher
from bot.personas import PersonaLibrary
from bot.speech import VoiceReplies
from bot.store.base import EventStore, Store

if TYPE_CHECKING:
    from bot.backends.speech import OpenAISpeech
    from bot.backends.transcription import OpenAITranscriber

log = logging.getLogger(__name__)


def build_discord(engine: Engine, settings: Settings, events: EventStore) -> PlatformAdapter:
    from adapters.discord import build_discord_adapter

    return build_discord_adapter(engine, settings.discord, events=events)


def build_telegram(engine: Engine, settings: Settings, events: EventStore) -> PlatformAdapter:
    from adapters.telegram import build_telegram_adapter

    return build_telegram_adapter(engine, settings.telegram, settings.web, events=events)


def build_store(settings: Settings) -> Store:
    store = settings.store
    if store.kind == "sqlite":
        from bot.store.sqlite import SqliteStore

        return SqliteStore(store.sqlite_path)
    from bot.store.dynamo import DynamoStore

    return DynamoStore(
        store.dynamodb_table, endpoint_url=store.dynamodb_endpoint_url, region=store.dynamodb_region
    )


def build_backends(settings: Settings) -> dict[str, Backend]:
    """The configured backends by name: offline always; ``openai`` when
    ``OPENAI__API_KEY`` is set or ``OPENAI__BASE_URL`` names another server than
    OpenAI's (a local server needs no key); ``characterai`` when ``CHARACTERAI__TOKEN``
    is set (it logs in when the application starts: see :class:`Startable`)."""
    backends: dict[str, Backend] = {
        "offline": OfflineBackend(
            seed=settings.offline.seed, word_delay=settings.offline.word_delay
        )
    }
    openai = settings.openai
    if openai.enabled:
        from bot.backends.openai import OpenAIBackend

        key = openai.api_key.get_secret_value() if openai.api_key else None
        backends["openai"] = OpenAIBackend(
            base_url=openai.base_url,
            api_key=key,
            model=openai.model,
            defaults=openai.sampling(),
            include_usage=openai.include_usage,
            timeout=settings.engine.total_timeout,
            vision=openai.vision,
            prompt=prompt_options(settings),
        )
    if settings.characterai.token is not None:
        from functools import partial

        from bot.backends.characterai import CharacterAIBackend
        from bot.backends.characterai_client import connect

        token = settings.characterai.token.get_secret_value()
        backends["characterai"] = CharacterAIBackend(partial(connect, token))
    return backends


def prompt_options(settings: Settings) -> PromptOptions:
    """How the prompt of a backend that takes one is laid out (``PROMPT__*``)."""
    prompt = settings.prompt
    return PromptOptions(
        context_tokens=prompt.context_tokens,
        reply_tokens=settings.openai.max_tokens or DEFAULT_REPLY_TOKENS,
        lorebook_share=prompt.lorebook_share,
        main_prompt=DEFAULT_SYSTEM_PROMPT if prompt.main_prompt is None else prompt.main_prompt,
        post_history=prompt.post_history,
    )


def build_guard(settings: Settings, backends: dict[str, Backend]) -> ReplyGuard:
    engine = settings.engine
    policy = GuardPolicy(
        first_delta_timeout=engine.first_delta_timeout,
        total_timeout=engine.total_timeout,
        retries=engine.retries,
        retry_backoff=engine.retry_backoff,
        breaker_failures=engine.breaker_failures,
        breaker_cooldown=engine.breaker_cooldown,
    )
    return ReplyGuard(backends, policy)


async def purge_expired_periodically(
    store: Store, interval: float, clock: Callable[[], float] = time.time
) -> None:
    """Delete expired link codes and web sessions now, then every ``interval`` seconds,
    until cancelled. Reads refuse expired ones anyway: this only keeps the store from
    growing without bound, so a failed round is logged and left to the next one."""
    while True:
        try:
            purged = await store.purge_expired(clock())
        except StoreError as exc:
            log.warning(
                "purging expired link codes and sessions failed (next try in %gs): %s",
                interval,
                exc,
            )
        except Exception:  # a bug: logged, but it must not end the purging for good
            log.exception("purging expired link codes and sessions failed")
        else:
            log.debug("purged %d expired link codes and web sessions", purged)
        await asyncio.sleep(interval)


def build_media(settings: Settings) -> tuple[MediaProcessor, OpenAITranscriber | None]:
    """The file converter, with a transcriber when ``TRANSCRIPTION__*`` is set."""
    speech = settings.transcription
    transcriber = None
    if speech.enabled:
        from bot.backends.transcription import OpenAITranscriber

        transcriber = OpenAITranscriber(
            base_url=speech.base_url or DEFAULT_OPENAI_BASE_URL,
            api_key=speech.api_key.get_secret_value() if speech.api_key else None,
            model=speech.model,
            timeout=settings.media.transcription_timeout,
        )
    return MediaProcessor(settings.media, transcriber), transcriber


def build_speech(settings: Settings) -> OpenAISpeech | None:
    """The speech service replies are read aloud with, when ``SPEECH__*`` is set."""
    speech = settings.speech
    if not speech.enabled:
        return None
    from bot.backends.speech import OpenAISpeech

    return OpenAISpeech(
        base_url=speech.base_url or DEFAULT_OPENAI_BASE_URL,
        api_key=speech.api_key.get_secret_value() if speech.api_key else None,
        model=speech.model,
        audio_format=speech.format,
        timeout=speech.timeout,
    )


class PersonaBridge:
    """Everything one process runs, opened and closed together."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        backends: dict[str, Backend] | None = None,
        personas: PersonaLibrary | None = None,
        metrics: Metrics | None = None,
    ):
        from adapters.web import PrometheusMetrics

        self.settings = settings
        self.health = AdapterHealth()
        self.startup_backoff = STARTUP_BACKOFF
        self.metrics = metrics if metrics is not None else PrometheusMetrics()
        self.store = store if store is not None else build_store(settings)
        self.personas = personas if personas is not None else load_personas(settings)
        # only cards this process loaded from PERSONAS_DIR are watched there
        self.persona_watcher = (
            PersonaWatcher(
                self.personas, settings.personas_dir, default_backend=settings.default_backend
            )
            if personas is None
            else None
        )
        self.backends = backends if backends is not None else build_backends(settings)
        self.guard = build_guard(settings, self.backends)
        self._check_persona_backends()
        media, self._transcriber = build_media(settings)
        self._speech = build_speech(settings)
        self.engine = build_engine(
            self.store,
            self.personas,
            self.guard,
            settings=settings.engine,
            rate_limit=settings.rate_limit,
            access=settings.access,
            metrics=self.metrics,
            linking=settings.linking,
            media=media,
            speech=VoiceReplies(self.store, self.personas, self._speech, settings.speech),
        )
        self._stack = AsyncExitStack()

    def _check_persona_backends(self) -> None:
        """Warn at start about personas whose brain is not configured: their fallbacks
        answer and, last, the offline backend, which may surprise whoever wrote them."""
        for persona in self.personas:
            missing = [n for n in (persona.backend, *persona.fallback) if n not in self.backends]
            if missing:
                answering = ", ".join(b.name for b in self.guard.chain(persona)) or "nobody"
                log.warning(
                    "persona %s: backends not configured: %s (its replies come from %s)",
                    persona.id,
                    ", ".join(missing),
                    answering,
                )

    async def __aenter__(self) -> Self:
        try:
            await self._stack.enter_async_context(self.store)
            if self._transcriber is not None:
                self._stack.push_async_callback(self._transcriber.aclose)
            if self._speech is not None:
                self._stack.push_async_callback(self._speech.aclose)
            for backend in self.backends.values():
                self._stack.push_async_callback(backend.aclose)
                if isinstance(backend, Startable):
                    await backend.start()  # a refused token stops the start here
            # closed first: summaries still being made need the backends and the store
            self._stack.push_async_callback(self.engine.aclose)
            self._stack.push_async_callback(self._stop_purging, self._start_purging())
            await self._start_watching_personas()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    def _start_purging(self) -> asyncio.Task[None]:
        purging = purge_expired_periodically(self.store, self.settings.store.purge_interval)
        return asyncio.create_task(purging, name="purge expired codes and sessions")

    async def _start_watching_personas(self) -> None:
        interval = self.settings.personas_reload_interval
        if self.persona_watcher is None or interval <= 0:
            return
        await self.persona_watcher.start()
        task = asyncio.create_task(
            self.persona_watcher.run(interval), name="reload changed persona cards"
        )
        self._stack.push_async_callback(self._stop_background, task)

    @staticmethod
    async def _stop_background(task: asyncio.Task[None]) -> None:
        task.cancel()
        await asyncio.wait([task])

    @staticmethod
    async def _stop_purging(task: asyncio.Task[None]) -> None:
        task.cancel()
        # wait() rather than await: a cancellation of the caller itself still propagates
        await asyncio.wait([task])

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def enabled_adapters(self, *, gateways: bool = True, reuse_port: bool = False) -> list[Adapter]:
        """The adapters the settings switch on, in start order: the platforms first (their
        webhook routes must be ready before the web server takes requests for them), the
        web last (so it stops first). Without ``gateways`` (a worker other than the
        first, :mod:`bot.workers`) no Discord gateway client and no Telegram polling;
        ``reuse_port`` lets several workers bind the web port."""
        platforms: list[PlatformAdapter] = []
        settings = self.settings
        if not gateways:
            settings = settings.model_copy(
                update={"discord": settings.discord.model_copy(update={"token": None})}
            )
        discord = settings.discord
        if discord.token or discord.public_key:
            platforms.append(build_discord(self.engine, settings, self.store))
        telegram = settings.telegram
        if telegram.token and (gateways or telegram.mode == "webhook"):
            platforms.append(build_telegram(self.engine, settings, self.store))
        adapters: list[Adapter] = list(platforms)
        routes = [route for platform in platforms for route in platform.web_routes()]
        if self.settings.web.enabled:
            from adapters.web import PrometheusMetrics, WebAdapter, create_app
            from auth import AccountService

            metrics = self.metrics if isinstance(self.metrics, PrometheusMetrics) else None
            accounts = AccountService(
                self.store,
                notices=self.engine.notices,
                max_live_codes=self.settings.linking.max_live_codes,
                session_cache_seconds=self.settings.web.session_cache_seconds,
            )
            app = create_app(
                self.engine,
                accounts,
                upkeep=self.store,
                settings=self.settings.web,
                metrics=metrics,
                extra_routes=routes,
                telegram_bot_username=self.settings.telegram.bot_username,
                health=self.health,
            )
            adapters.append(WebAdapter(app, reuse_port=reuse_port))
        elif routes:
            raise ConfigError(
                "the Discord interactions endpoint and Telegram's webhook are served by the web "
                "adapter: set PERSONABRIDGE_WEB__ENABLED=true"
            )
        return adapters

    async def serve(self, adapters: Sequence[Adapter], stop: asyncio.Event) -> None:
        """Start the adapters, wait for ``stop``, stop them in reverse order.

        An adapter whose platform cannot be reached (:class:`PlatformUnreachable`) does
        not stop the others: it is marked degraded in :attr:`health` and tried again in
        the background, with backoff, until it starts or ``stop`` is set. Any other
        error (a refused token, a port in use) stops the start."""
        retrying: set[asyncio.Task[None]] = set()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_stop_tasks, retrying, stop)
            for adapter in adapters:
                self.health.mark(adapter.name, "starting")
                try:
                    await stack.enter_async_context(adapter)
                except PlatformUnreachable as exc:
                    self._degraded(adapter, exc, self.startup_backoff.delay(1))
                    task = asyncio.create_task(
                        self._keep_trying(adapter, stop), name=f"start {adapter.name} again"
                    )
                    retrying.add(task)
                    continue
                self.health.mark(adapter.name, "ok")
                log.info("%s adapter started", adapter.name)
            await stop.wait()
            log.info("stopping")

    def _degraded(self, adapter: Adapter, exc: PlatformUnreachable, wait: float) -> None:
        self.health.mark(adapter.name, "degraded", str(exc))
        log.warning("%s adapter not started: %s (trying again in %.0f s)", adapter.name, exc, wait)

    async def _keep_trying(self, adapter: Adapter, stop: asyncio.Event) -> None:
        """Start ``adapter`` once its platform answers; serve with it until ``stop``."""
        for failures in itertools.count(1):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.startup_backoff.delay(failures)):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                async with adapter:
                    self.health.mark(adapter.name, "ok")
                    log.info("%s adapter started", adapter.name)
                    await stop.wait()
                return
            except PlatformUnreachable as exc:
                self._degraded(adapter, exc, self.startup_backoff.delay(failures + 1))
            except Exception:  # a refused token now, say: logged, and given up on
                self.health.mark(adapter.name, "degraded", "failed to start; see the log")
                log.exception("%s adapter could not start", adapter.name)
                return


#: How an adapter whose platform was unreachable at start is tried again: after 5 s,
#: then twice as long each time, at most 5 minutes.
STARTUP_BACKOFF = Backoff(5.0, cap=300.0)


async def _stop_tasks(tasks: set[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Let the retrying starts leave (also when another adapter's failure ends the
    start, ``stop`` unset until now); cancel stragglers."""
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=15.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
