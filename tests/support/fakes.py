"""Our own in-memory implementations of our own interfaces, for tests.

(``MemoryStore`` lives in ``bot/store/memory.py``: it passes the store contract suite.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from bot.errors import BackendUnavailable
from bot.messages import Turn
from bot.personas import Exchange, Persona
from bot.store.base import BackendState


def make_persona(
    persona_id: str = "ada",
    name: str = "Professor Ada",
    *,
    backend: str = "offline",
    fallback: tuple[str, ...] = (),
) -> Persona:
    return Persona(
        id=persona_id,
        name=name,
        greeting="Hello {{user}}, I am {{char}}.",
        description=f"{name} teaches cloud computing.",
        examples=(Exchange("What is Docker?", "Docker packages software into containers."),),
        knowledge=("Lambda functions scale to zero.",),
        backend=backend,
        fallback=fallback,
    )


class WindowEcho:
    """Replies with the message and every user turn it was shown, so a test can see
    exactly what entered the window: ``"re:<text> saw:[a|b|c]"``."""

    def __init__(self, name: str = "echo", *, chunk: int = 7, pause: float = 0.0):
        self.name = name
        self.calls = 0
        self._chunk = chunk
        self._pause = pause

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        self.calls += 1
        seen = "|".join(t.text for t in window if t.role == "user")
        text = f"re:{message.text} saw:[{seen}]"
        for start in range(0, len(text), self._chunk):
            if self._pause:
                await asyncio.sleep(self._pause)
            else:
                await asyncio.sleep(0)
            yield text[start : start + self._chunk]

    async def aclose(self) -> None:
        pass


class ScriptedBackend:
    """Each call takes the next step of a script: a string is the reply; an exception
    is raised before any text; ``("partial", exc)`` streams ``partial`` then raises;
    ``("stall", seconds)`` waits that long before its first delta."""

    Step = str | BaseException | tuple[str, object]

    def __init__(self, name: str, steps: Sequence[Step], *, default: str = "ok"):
        self.name = name
        self._steps = list(steps)
        self._default = default
        self.calls = 0
        self.closed = False

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        self.calls += 1
        step = self._steps.pop(0) if self._steps else self._default
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, tuple):
            kind, arg = step
            if kind == "stall":
                assert isinstance(arg, int | float)
                await asyncio.sleep(arg)
                yield "late"
                return
            yield kind
            assert isinstance(arg, BaseException)
            raise arg
        for word in step.split(" "):
            yield word + " "

    async def aclose(self) -> None:
        self.closed = True


class StatefulBackend:
    """Counts its calls per conversation in ``state``, as a remote chat id would be kept."""

    name = "stateful"

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        state["calls"] = int(state.get("calls", 0)) + 1
        yield f"call {state['calls']}"

    async def aclose(self) -> None:
        pass


class TextBackend:
    """Replies with a fixed text, in ``chunk``-character deltas ``pause`` seconds apart."""

    def __init__(self, text: str, *, name: str = "text", chunk: int = 50, pause: float = 0.0):
        self.name = name
        self.text = text
        self._chunk = chunk
        self._pause = pause

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
    ) -> AsyncIterator[str]:
        for start in range(0, len(self.text), self._chunk):
            await asyncio.sleep(self._pause)
            yield self.text[start : start + self._chunk]

    async def aclose(self) -> None:
        pass


def failing(times: int, then: str = "recovered") -> ScriptedBackend:
    return ScriptedBackend("flaky", [BackendUnavailable("down")] * times, default=then)


class InjectedFault(Protocol):
    """One fault a fake platform server answers a request with."""

    @property
    def status(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def applied(self) -> bool:
        """Whether the request takes effect before the error is answered."""
        ...


class FaultSource(Protocol):
    """What the fake platform servers ask, request by request, whether to fail."""

    def decide(self, key: str) -> InjectedFault | None:
        """The fault for the request with this key (each fake documents its keys), or None."""
