"""The guard hands the reply context only to backends that name it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from bot.backends.base import ReplyContext
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.messages import Turn, UserPersona
from bot.personas import Persona
from bot.store.base import BackendState
from tests.support.fakes import WindowEcho, make_persona

CONTEXT = ReplyContext(UserPersona("Robin", "a ranger"), ("an earlier reply",), seed="s")


class Named:
    name = "named"

    def __init__(self) -> None:
        self.seen: list[ReplyContext | None] = []

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        context: ReplyContext | None = None,
    ) -> AsyncIterator[str]:
        self.seen.append(context)
        yield "ok"

    async def aclose(self) -> None:
        pass


class Forwarding:
    """Passes whatever it is given on to a backend written before contexts."""

    name = "forwarding"

    def __init__(self) -> None:
        self.inner = WindowEcho()

    def reply(self, *args: Any, **kwargs: Any) -> AsyncIterator[str]:
        return self.inner.reply(*args, **kwargs)

    async def aclose(self) -> None:
        pass


async def collect(guard: ReplyGuard, backend_name: str) -> str:
    persona = make_persona(backend=backend_name)
    message = Turn(1, "user", "hi", "Robin", 0.0)
    return "".join([d async for d in guard.stream(persona, [], message, {}, context=CONTEXT)])


async def test_a_backend_that_names_context_gets_it() -> None:
    named = Named()
    guard = ReplyGuard({named.name: named}, GuardPolicy(retries=0))
    assert await collect(guard, named.name) == "ok"
    assert named.seen == [CONTEXT]


async def test_a_backend_written_before_contexts_still_answers() -> None:
    for backend in (WindowEcho(), Forwarding()):
        guard = ReplyGuard({backend.name: backend}, GuardPolicy(retries=0))
        assert await collect(guard, backend.name) == "re:hi saw:[]"
