"""Shared by the backend tests: a full persona card and an engine over given backends."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.personas import Exchange, Persona
from bot.store.base import Store
from tests.support import engine as engine_support

FAST = GuardPolicy(
    first_delta_timeout=2.0, total_timeout=5.0, retries=1, retry_backoff=0, breaker_failures=0
)


def card(
    persona_id: str = "ada",
    *,
    backend: str = "openai",
    fallback: tuple[str, ...] = (),
    **options: Any,
) -> Persona:
    """A persona with every field the prompt uses, macros included."""
    return Persona(
        id=persona_id,
        name="Professor Ada",
        greeting="Hello {{user}}.",
        description="{{char}} teaches cloud computing.",
        personality="patient, dry humour",
        scenario="{{user}} visits {{char}}'s office hours.",
        system_prompt="You are {{char}}. Speak to {{user}} warmly.",
        post_history_instructions="Stay in character as {{char}}; keep it short for {{user}}.",
        examples=(Exchange("What is Docker?", "Containers, {{user}}: sealed boxes."),),
        knowledge=("Lambda functions scale to zero.",),
        backend=backend,
        backend_options=MappingProxyType(dict(options)),
        fallback=fallback,
        source=f"{persona_id}.toml",
    )


def build_engine(
    store: Store,
    backends: Sequence[Backend],
    personas: Sequence[Persona],
    *,
    policy: GuardPolicy = FAST,
    settings: EngineSettings | None = None,
    clock: Any = None,
) -> Engine:
    """The engine over ``backends`` (the first is the default persona's), with
    ``clock`` for the guard's circuit breaker."""
    first, *extra = backends
    return engine_support.build_engine(
        store,
        first,
        extra=extra,
        personas=personas,
        policy=policy,
        guard_clock=clock,
        settings=settings,
        rate_limit=RateLimitSettings(per_minute=6000, burst=1000),
    )
