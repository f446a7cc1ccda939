"""The ``Backend`` protocol: a persona's brain, as a stream of text deltas.

Beside it, abilities a backend may have and the engine uses when it does:

* :class:`MeteredStream`: a reply stream that also says what it cost in tokens;
* :class:`Summariser`: condenses turns that left the window into a running summary;
* :class:`Startable`: connects once at startup (and fails the start on bad settings).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.messages import Turn, UserPersona
from bot.personas import Persona
from bot.store.base import BackendState


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What a backend may use beyond the window: who the user says they are, and the
    replies this same user turn already had (``/retry``), so a new one can differ."""

    user: UserPersona = field(default_factory=UserPersona)
    #: Earlier replies to the message being answered, oldest first (``/retry`` only).
    earlier_replies: tuple[str, ...] = ()
    #: Stable for one conversation: what makes ``{{pick:...}}`` choose the same each time.
    seed: str = ""

    @property
    def retry(self) -> bool:
        return bool(self.earlier_replies)


class Backend(Protocol):
    """Produces the persona's reply to ``message`` given the recent ``window``.

    ``window`` holds the conversation's earlier turns, oldest first, already bounded by
    the engine; ``message`` is the stored user turn being answered (its ``author`` is the
    user's display name, for ``{{user}}``). ``state`` is this backend's per-conversation
    state: the backend may change it in place and the engine persists the change.
    ``summary`` is the running summary of the turns before the window (empty when there
    is none; it is passed only when there is one). ``context`` says who the user says
    they are and what a ``/retry`` replaces (:class:`ReplyContext`; passed only to a
    backend whose ``reply`` names it, so one that needs it not may leave it out).

    Backends raise :class:`~bot.errors.BackendError` subclasses for expected failures;
    timeouts, retries and fallback are not theirs to do (see :mod:`bot.backends.guard`).
    """

    name: str

    def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
        context: ReplyContext | None = None,
    ) -> AsyncIterator[str]: ...

    async def aclose(self) -> None:
        """Release clients and connections; called once at shutdown."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one backend call cost, as the server reported it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class MeteredStream:
    """The deltas of one reply, and what the reply cost once the stream has ended.

    A backend whose server reports token usage returns one of these from ``reply``:
    ``produce`` is called with the stream and yields the deltas, setting ``usage`` when
    the server says. The guard reads ``usage`` after the last delta. Iterating costs no
    more than iterating ``produce``'s generator itself.
    """

    __slots__ = ("_deltas", "usage")

    def __init__(self, produce: Callable[[MeteredStream], AsyncGenerator[str, None]]) -> None:
        self.usage: TokenUsage | None = None
        self._deltas = produce(self)

    def __aiter__(self) -> MeteredStream:
        return self

    def __anext__(self) -> Awaitable[str]:
        return self._deltas.__anext__()

    async def aclose(self) -> None:
        await self._deltas.aclose()


@dataclass(frozen=True, slots=True)
class Summarised:
    """A new running summary and what making it cost."""

    text: str
    usage: TokenUsage | None = None


@runtime_checkable
class Summariser(Protocol):
    """A backend that can keep a long conversation's gist (see :mod:`bot.summary`)."""

    async def summarise(
        self, persona: Persona, summary: str, turns: Sequence[Turn], *, max_chars: int
    ) -> Summarised:
        """Fold ``turns`` (oldest first) into ``summary`` (empty at first): the updated
        summary, in about ``max_chars`` characters at most. Raises BackendError."""


@runtime_checkable
class Startable(Protocol):
    """A backend that connects once when the application starts."""

    async def start(self) -> None:
        """Connect; raise :class:`~bot.errors.ConfigError` when the settings are wrong
        (a refused token). A backend that merely cannot connect yet should log it and
        try again on its first reply rather than stop the whole application."""
