"""The engine the property tests drive: real, over a given store, with ``WindowEcho``
as every persona's brain and settings that keep the model exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.backends.guard import GuardPolicy
from bot.config import EngineSettings, LinkingSettings, RateLimitSettings
from bot.engine import Engine
from bot.messages import Incoming, ReplyDone
from bot.store.base import Store
from tests.support import engine as engine_support
from tests.support.engine import send
from tests.support.fakes import WindowEcho, make_persona

PERSONAS = {"ada": "Professor Ada", "morrow": "Captain Morrow"}
FORGET_CONFIRM_SECONDS = 300.0
#: How long a /link CODE waits for its confirmation.
CONFIRM_SECONDS = 300.0
#: Generous: the machine is shared, and a timeout would be a false failure here.
POLICY = GuardPolicy(first_delta_timeout=60.0, total_timeout=120.0, retries=0)
#: Everything of a conversation fits the window: the echo then names every user turn.
WINDOW = EngineSettings(
    window_max_turns=1000,
    window_max_chars=10_000_000,
    forget_confirm_seconds=FORGET_CONFIRM_SECONDS,
)
#: Rate limits are not the property here (tests/test_limits.py has them).
NO_RATE_LIMIT = RateLimitSettings(per_minute=1_000_000, burst=1_000_000)


class Ticks:
    """A monotonic clock whose readings are far apart: the link-attempt limit (5 per
    identity per 15 minutes) never bites, however many wrong codes a run sends."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10_000.0
        return self.now


def build_engine(store: Store, clock: Callable[[], float]) -> Engine:
    backend = WindowEcho("echo")
    return engine_support.build_engine(
        store,
        backend,
        personas=[make_persona(pid, name, backend=backend.name) for pid, name in PERSONAS.items()],
        policy=POLICY,
        settings=WINDOW,
        rate_limit=NO_RATE_LIMIT,
        clock=clock,
        monotonic=Ticks(),
        linking=LinkingSettings(confirm_seconds=CONFIRM_SECONDS),
    )


@dataclass
class Sent:
    """A message and everything the engine answered to it."""

    incoming: Incoming
    deltas: list[str]
    done: ReplyDone | None


async def collect(engine: Engine, incoming: Incoming) -> Sent:
    deltas, done = await send(engine, incoming)
    return Sent(incoming, deltas, done)


async def collect_all(engine: Engine, incomings: Sequence[Incoming]) -> list[Sent]:
    """Send them all at once: their steps interleave at every await."""
    return list(await asyncio.gather(*(collect(engine, i) for i in incomings)))
