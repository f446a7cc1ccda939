"""How an engine is put together, one way for the wiring, the benchmarks and the tests.

:class:`~bot.engine.Engine` builds none of its collaborators: it is given an
:class:`EngineParts` (the command handlers with their link consent, the background
summaries, the account notices, the rate limits, the conversations' locks, the file
converter, the voice replies). :func:`build_engine` makes those parts from the settings sections and
returns the engine; :mod:`bot.app` calls it with the process's settings, tests and
benchmarks with the sections they tune.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.backends.guard import ReplyGuard
from bot.commands import CommandHandlers
from bot.config import (
    AccessSettings,
    EngineSettings,
    LinkingSettings,
    MediaSettings,
    RateLimitSettings,
)
from bot.engine import Engine
from bot.limits import KeyedLocks, RateLimiter
from bot.link_consent import LinkConsent
from bot.media import MediaProcessor
from bot.messages import OwnerId
from bot.metrics import Metrics, NullMetrics
from bot.notices import AccountNotices
from bot.personas import Persona, PersonaLibrary
from bot.retrying import StoreRetry
from bot.speech import VoiceReplies
from bot.store.base import Store
from bot.summary import Summaries, SummaryPolicy

#: How many times the chat rate limit read-only commands (/help, /whoami, ...) get.
READ_BUDGET = 4
#: Tries at ``/link CODE`` an identity gets per LINK_TRY_SECONDS (codes are short).
LINK_TRIES = 5
LINK_TRY_SECONDS = 900
#: Tracked objects the cyclic garbage collector lets accumulate before it collects its
#: youngest generation, in a process with an engine (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The budgets a message spends, per identity (token buckets, :mod:`bot.limits`)."""

    #: Chat messages and commands that change something.
    chat: RateLimiter
    #: Commands that only read are cheap: a budget of their own, READ_BUDGET times as
    #: large, so asking never costs a chat message and a flood is still held back.
    read: RateLimiter
    #: Platforms whose messages spend nothing (``RATE_LIMIT__EXEMPT_PLATFORMS``).
    exempt: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> RateLimits:
        per_second = settings.per_minute / 60
        return cls(
            chat=RateLimiter(per_second=per_second, burst=settings.burst, clock=clock),
            read=RateLimiter(
                per_second=READ_BUDGET * per_second, burst=READ_BUDGET * settings.burst, clock=clock
            ),
            exempt=frozenset(settings.exempt_platforms),
        )


@dataclass(frozen=True, slots=True)
class EngineParts:
    """The engine's collaborators, built before it (:func:`build_engine`)."""

    commands: CommandHandlers
    summaries: Summaries
    #: Tells account owners of links and unlinks; adapters register their senders.
    notices: AccountNotices
    limits: RateLimits
    #: One lock per conversation: the engine answers under it, summaries are kept under it.
    locks: KeyedLocks
    media: MediaProcessor
    #: Replies read aloud (``/voice on``), when a speech service is set up.
    speech: VoiceReplies


def build_engine(
    store: Store,
    personas: PersonaLibrary,
    guard: ReplyGuard,
    *,
    settings: EngineSettings | None = None,
    rate_limit: RateLimitSettings | None = None,
    access: AccessSettings | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    store_retry: StoreRetry | None = None,
    media: MediaProcessor | None = None,
    linking: LinkingSettings | None = None,
    speech: VoiceReplies | None = None,
) -> Engine:
    """An engine over ``store``, ``personas`` and the backends ``guard`` guards, with
    its parts made from the given settings sections (their defaults when left out).
    ``clock`` is wall time (stored times, expiries), ``monotonic`` measures waits.
    Makes the process's young garbage collections rarer (:func:`relax_young_collections`)."""
    relax_young_collections()
    tuned = settings or EngineSettings()
    linking = linking or LinkingSettings()
    notices = AccountNotices(store, keep_seconds=linking.notice_days * 86400.0, clock=clock)
    engine: Engine | None = None

    def persona_of(owner: OwnerId) -> Awaitable[Persona]:
        # The persona a link confirmation names is the one the engine would answer
        # with; the engine is made last, and this is only called once it runs.
        assert engine is not None
        return engine.active_persona(owner)

    def voice_ready() -> bool:
        # whether /voice on can keep its word: the engine's speech, as it is now
        assert engine is not None
        return engine.speech.enabled

    consent = LinkConsent(
        store,
        notices,
        clock=clock,
        attempts=RateLimiter(
            per_second=LINK_TRIES / LINK_TRY_SECONDS, burst=LINK_TRIES, clock=monotonic
        ),
        confirm_seconds=linking.confirm_seconds,
        persona_of=persona_of,
    )
    commands = CommandHandlers(
        store,
        personas,
        clock=clock,
        linking=consent,
        forget_confirm_seconds=tuned.forget_confirm_seconds,
        voice_ready=voice_ready,
    )
    locks = KeyedLocks()
    policy = SummaryPolicy(
        batch=tuned.summary_batch_turns,
        max_chars=tuned.summary_max_chars,
        timeout=guard.policy.total_timeout,
    )
    summaries = Summaries(
        store,
        locks,
        policy,
        load_turns=tuned.window_max_turns + 2 * policy.batch,
        ready=lambda name: guard.circuit(name) == "closed",
    )
    parts = EngineParts(
        commands=commands,
        summaries=summaries,
        notices=notices,
        limits=RateLimits.from_settings(rate_limit or RateLimitSettings(), monotonic),
        locks=locks,
        media=media or MediaProcessor(MediaSettings()),
        speech=speech or VoiceReplies(store, personas, None),
    )
    engine = Engine(
        store,
        personas,
        guard,
        parts,
        settings=tuned,
        access=access or AccessSettings(),
        metrics=metrics or NullMetrics(),
        store_retry=store_retry or StoreRetry(),
        clock=clock,
        monotonic=monotonic,
    )
    return engine


def relax_young_collections(threshold: int = GC_YOUNG_THRESHOLD) -> None:
    """Let the cyclic garbage collector's youngest generation grow to ``threshold``
    tracked objects between collections (a larger setting is left as it is).

    Every message allocates a few hundred short-lived containers (futures, coroutines,
    turns). With hundreds of conversations in flight, Python's default collected the
    young generation every few messages and promoted what was merely in flight, so the
    older generations were walked often too: about 30 us of CPU a message, 15% of the
    engine's, went to the collector (``bench/engine.py``). Reference counting still frees
    nearly everything at once; only reference cycles wait a little longer."""
    young, older, oldest = gc.get_threshold()
    if young < threshold:
        gc.set_threshold(threshold, older, oldest)
