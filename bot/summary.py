"""Long conversations: a running summary of the turns that left the window.

When the window no longer reaches back to the start of a conversation, the turns that
dropped out are folded into a summary by the persona's own backend (one that is a
:class:`~bot.backends.base.Summariser`; the offline backend is not, nor is
Character.AI, which remembers by itself). It is made in the background once at least
``batch`` dropped turns wait, after the reply that dropped them has been stored, so it
never slows a reply nor competes with it for a local model. It is stored with the
conversation (``save_conversation_state(summary=...)``) and the engine passes it to
later prompts.

Stored as a small JSON object, :class:`StoredSummary`: the text and the ``seq`` of the
last turn folded in, so each turn is summarised once.

A summary belongs to one conversation key, and is saved only under that
conversation's lock, only if the conversation still holds the last turn it folded in:
a ``/reset``, ``/forget``, link or account deletion meanwhile makes it go unsaved, so a
summary never lands in another conversation nor brings back forgotten data. At most one
summary runs per conversation; :meth:`Summaries.aclose` waits for the running ones (a
few seconds) and cancels the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.backends.base import Summariser
from bot.errors import BackendError, StoreError
from bot.limits import KeyedLocks
from bot.messages import ConversationKey, Turn
from bot.personas import Persona
from bot.store.base import ConversationStore, ConversationWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """The running summary of a conversation, through the turn with seq ``through``."""

    text: str = ""
    through: int = 0

    def encode(self) -> str:
        return json.dumps({"v": 1, "through": self.through, "text": self.text})

    @classmethod
    def decode(cls, raw: str) -> StoredSummary:
        """Read what :meth:`encode` wrote; any other text is a summary of nothing known."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(str(data["text"]), int(data["through"]))
        except (ValueError, TypeError, KeyError):
            return cls(raw, 0)


@dataclass(frozen=True, slots=True)
class SummaryPolicy:
    #: Dropped turns that must wait before a summary is made.
    batch: int = 8
    #: The most characters a summary keeps.
    max_chars: int = 1500
    #: Seconds one summary may take.
    timeout: float = 120.0


def dropped_turns(
    summary: StoredSummary, history: Sequence[Turn], context: Sequence[Turn]
) -> list[Turn]:
    """The turns of ``history`` (oldest first) before ``context`` that ``summary`` does
    not cover yet; of replies replaced by ``/retry``, only the newest."""
    start = context[0].seq if context else (history[-1].seq + 1 if history else 0)
    turns = [t for t in history if summary.through < t.seq < start]
    return [
        t
        for i, t in enumerate(turns)
        if not (t.role == "assistant" and i + 1 < len(turns) and turns[i + 1].role == "assistant")
    ]


class Summaries:
    """The background summaries of one engine (see the module docstring)."""

    def __init__(
        self,
        store: ConversationStore,
        locks: KeyedLocks,
        policy: SummaryPolicy,
        *,
        load_turns: int,
        ready: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self._store = store
        self._locks = locks
        self._policy = policy
        self._load_turns = load_turns
        self._ready = ready
        self._running: dict[ConversationKey, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def policy(self) -> SummaryPolicy:
        return self._policy

    def maybe_start(
        self,
        key: ConversationKey,
        persona: Persona,
        backend: Summariser,
        summary: StoredSummary,
        dropped: Sequence[Turn],
    ) -> bool:
        """Start folding ``dropped`` into ``summary`` when enough turns wait, the backend
        is healthy and no summary of this conversation is running; whether it started."""
        if (
            self._closed
            or len(dropped) < self._policy.batch
            or key in self._running
            or not self._ready(persona.backend)
        ):
            return False
        task = asyncio.create_task(self._make(key, persona, backend, summary, list(dropped)))
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return True

    @property
    def running(self) -> int:
        """How many summaries are being made."""
        return len(self._running)

    def _finished(self, key: ConversationKey, task: asyncio.Task[None]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("a summary failed unexpectedly", exc_info=exc)

    async def wait(self) -> None:
        """Wait until no summary is running (for tests and orderly shutdowns)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop starting summaries; wait ``grace`` seconds for the running ones, then
        cancel the rest."""
        self._closed = True
        tasks = list(self._running.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _make(
        self,
        key: ConversationKey,
        persona: Persona,
        backend: Summariser,
        summary: StoredSummary,
        turns: list[Turn],
    ) -> None:
        policy = self._policy
        try:
            async with asyncio.timeout(policy.timeout):
                made = await backend.summarise(
                    persona, summary.text, turns, max_chars=policy.max_chars
                )
        except (BackendError, TimeoutError) as exc:
            log.warning("no summary for persona %s this time: %r", persona.id, exc)
            return
        except Exception:  # a backend bug must not go unnoticed, nor stop anything
            log.exception("summarising for persona %s failed", persona.id)
            return
        text = _clip(made.text, policy.max_chars)
        if not text:
            return
        anchor = turns[-1]
        newer = StoredSummary(text, anchor.seq)
        try:
            async with self._locks.lock(key):
                window = await self._current(key, anchor)
                if window is None:
                    log.info("conversation moved on (reset, forgotten or linked): summary dropped")
                    return
                if StoredSummary.decode(window.summary).through >= newer.through:
                    return
                await self._store.save_conversation_state(
                    key, window.version, summary=newer.encode()
                )
                if made.usage is not None:
                    usage = made.usage
                    await self._store.add_usage(
                        key.owner, usage.prompt_tokens, usage.completion_tokens
                    )
        except StoreError as exc:  # a version conflict included: the next overflow retries
            log.warning("could not keep a summary: %s", exc)

    async def _current(self, key: ConversationKey, anchor: Turn) -> ConversationWindow | None:
        """The conversation's window back to ``anchor``, if it still holds that turn (so
        it is the conversation the summary was made for); else None."""
        newest = (await self._store.load_window(key, 1)).turns
        if not newest or newest[-1].seq < anchor.seq:
            return None
        reach = newest[-1].seq - anchor.seq + 1
        if reach > 2 * self._load_turns:  # it went on too far to check: make it anew later
            return None
        window = await self._store.load_window(key, reach)
        return window if window.turns and window.turns[0] == anchor else None


def _clip(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut after a sentence (or a word) when it must."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("! "), cut.rfind("? "))
    if end > max_chars // 2:
        return cut[: end + 1]
    cut = text[: max_chars - 1]
    if not text[len(cut)].isspace():  # the last word is cut: leave it out
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"
