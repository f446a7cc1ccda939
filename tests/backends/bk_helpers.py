"""Shared by the backend tests: a full persona card, an engine over given backends, and
sending messages through it."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from bot import engine_parts
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.messages import ConversationKey, Identity, Incoming, ReplyDone, TextDelta, guest_owner
from bot.personas import Exchange, Persona, PersonaLibrary
from bot.store.base import Store

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
    guard = ReplyGuard({b.name: b for b in backends}, policy, **({"clock": clock} if clock else {}))
    return engine_parts.build_engine(
        store,
        PersonaLibrary(personas),
        guard,
        settings=settings,
        rate_limit=RateLimitSettings(per_minute=6000, burst=1000),
    )


def dm(user: str, text: str, platform: str = "telegram") -> Incoming:
    return Incoming(platform, user, user.title(), chat_id=user, private=True, text=text)


def key(user: str, persona: str = "ada", platform: str = "telegram") -> ConversationKey:
    return ConversationKey(guest_owner(Identity(platform, user)), persona, "direct")


async def send(engine: Engine, incoming: Incoming) -> tuple[list[str], ReplyDone]:
    deltas: list[str] = []
    done: ReplyDone | None = None
    async for event in engine.handle(incoming):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert done is None, "exactly one ReplyDone"
            done = event
    assert done is not None
    return deltas, done


async def reply(engine: Engine, incoming: Incoming) -> ReplyDone:
    return (await send(engine, incoming))[1]
