"""The ``Backend`` protocol: a persona's brain, as a stream of text deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from bot.messages import Turn
from bot.personas import Persona
from bot.store.base import BackendState


class Backend(Protocol):
    """Produces the persona's reply to ``message`` given the recent ``window``.

    ``window`` holds the conversation's earlier turns, oldest first, already bounded by
    the engine; ``message`` is the stored user turn being answered (its ``author`` is the
    user's display name, for ``{{user}}``). ``state`` is this backend's per-conversation
    state: the backend may change it in place and the engine persists the change.

    Backends raise :class:`~bot.errors.BackendError` subclasses for expected failures;
    timeouts, retries and fallback are not theirs to do (see :mod:`bot.backends.guard`).
    """

    name: str

    def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]: ...

    async def aclose(self) -> None:
        """Release clients and connections; called once at shutdown."""
