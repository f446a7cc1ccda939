"""The real engine over our fakes, and talking to it: what every folder's tests share.

:func:`build_engine` is the one place tests put an :class:`~bot.engine.Engine` together
(from the constructors ``bot.app.PersonaBridge`` calls: a ``ReplyGuard`` over the
backends by name, a ``PersonaLibrary``, the engine's own settings); a folder's harness
only chooses its defaults (guard policy, backend, rate limit). :func:`send` drains one
reply the way an adapter does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot import engine_parts
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import RateLimitSettings
from bot.engine import Engine
from bot.messages import ConversationKey, Identity, Incoming, ReplyDone, TextDelta, guest_owner
from bot.personas import Persona, PersonaLibrary
from bot.store.base import Store
from tests.support.fakes import WindowEcho, make_persona

#: Generous: a healthy reply on a loaded machine must never be taken for a stalled one.
FAST = GuardPolicy(first_delta_timeout=5.0, total_timeout=10.0, retries=1, retry_backoff=0)
#: For tests about something else than the engine's rate limit, which would only refuse.
UNLIMITED = RateLimitSettings(per_minute=1e6, burst=1000)


def two_personas(backend_name: str) -> list[Persona]:
    """Professor Ada (the default persona) and Captain Morrow, both on ``backend_name``."""
    return [
        make_persona("ada", "Professor Ada", backend=backend_name),
        make_persona("morrow", "Captain Morrow", backend=backend_name),
    ]


def build_engine(
    store: Store,
    backend: Backend | None = None,
    *,
    extra: Sequence[Backend] = (),
    personas: PersonaLibrary | Sequence[Persona] | None = None,
    policy: GuardPolicy = FAST,
    guard_clock: Callable[[], float] | None = None,
    **options: Any,
) -> Engine:
    """The engine on ``store``, answering with ``backend`` (a :class:`WindowEcho` unless
    given) and ``extra`` backends; ``personas`` default to :func:`two_personas` on
    ``backend``; ``options`` go to :func:`bot.engine_parts.build_engine` (settings,
    clocks, rate limit...), which ``bot.app.PersonaBridge`` builds its engine with too."""
    backend = backend or WindowEcho()
    backends = {b.name: b for b in (backend, *extra)}
    guard_options = {} if guard_clock is None else {"clock": guard_clock}
    guard = ReplyGuard(backends, policy, **guard_options)
    if not isinstance(personas, PersonaLibrary):
        personas = PersonaLibrary(personas or two_personas(backend.name))
    return engine_parts.build_engine(store, personas, guard, **options)


def dm(user: str, text: str, platform: str = "telegram") -> Incoming:
    """A private message of ``user`` (their chat id is their user id)."""
    return Incoming(platform, user, user.title(), chat_id=user, private=True, text=text)


def group(user: str, text: str, chat: str = "g1", addressed: bool = True) -> Incoming:
    """A Telegram group message of ``user`` in ``chat``."""
    return Incoming(
        "telegram", user, user.title(), chat, private=False, text=text, addressed=addressed
    )


def key(user: str, persona: str = "ada", platform: str = "telegram") -> ConversationKey:
    """The direct conversation of guest ``user`` with ``persona``."""
    return ConversationKey(guest_owner(Identity(platform, user)), persona, "direct")


async def send(engine: Engine, incoming: Incoming) -> tuple[list[str], ReplyDone | None]:
    """Every delta the engine streamed for ``incoming``, and its one ``ReplyDone`` (None
    when the engine stayed silent)."""
    deltas: list[str] = []
    done: ReplyDone | None = None
    async for event in engine.handle(incoming):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert done is None, "exactly one ReplyDone"
            done = event
    return deltas, done


async def reply(engine: Engine, incoming: Incoming) -> ReplyDone:
    """The engine's final answer to ``incoming`` (there must be one)."""
    _, done = await send(engine, incoming)
    assert done is not None
    return done
