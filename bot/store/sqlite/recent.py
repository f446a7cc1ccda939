"""``RecentTurns``: the newest turns of recently used conversations, kept in memory.

With it a window costs one row lookup (the conversation's version) instead of one per
turn. An entry holds for one conversation at one version (a conversation id is never
given twice, even after /forget: ``conversation_ids``), and every load reads the version
from the file first, so an entry never serves turns that changed meanwhile (another
process appended, a reset, a link). Used on the worker thread only; cleared whenever a
transaction fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages import ConversationKey, Turn
from bot.store.lru import Lru


@dataclass(slots=True)
class _Recent:
    conversation_id: int
    version: int
    turns: tuple[Turn, ...]
    complete: bool  # whether turns start at the conversation's first

    def holds(self, conversation_id: int, version: int) -> bool:
        return self.conversation_id == conversation_id and self.version == version


class RecentTurns:
    """The recent turns of at most ``capacity`` conversations (see the module doc)."""

    def __init__(self, capacity: int) -> None:
        self._keep = 0  # the most turns a window has asked for
        self._entries: Lru[ConversationKey, _Recent] = Lru(capacity)

    def get(
        self, key: ConversationKey, conversation_id: int, version: int, max_turns: int
    ) -> tuple[Turn, ...] | None:
        """The newest ``max_turns`` turns of that very conversation and version, if
        they are all at hand."""
        entry = self._entries.get(key)
        if entry is None or not entry.holds(conversation_id, version):
            return None
        if len(entry.turns) < max_turns and not entry.complete:
            return None
        return entry.turns[-max_turns:] if max_turns > 0 else ()

    def put(
        self,
        key: ConversationKey,
        conversation_id: int,
        version: int,
        turns: tuple[Turn, ...],
        max_turns: int,
    ) -> None:
        """Keep the window just read from the file."""
        self._keep = max(self._keep, max_turns)
        complete = not turns or turns[0].seq == 1
        self._entries.put(key, _Recent(conversation_id, version, turns, complete))

    def advance(
        self,
        key: ConversationKey,
        conversation_id: int,
        version: int,
        added: tuple[Turn, ...],
        *,
        started: bool = False,
    ) -> None:
        """Follow a change this process made: version - 1 became ``version``."""
        entry = _Recent(conversation_id, version - 1, (), True) if started else None
        entry = entry or self._entries.get(key)
        if entry is None or not entry.holds(conversation_id, version - 1):
            self._entries.pop(key)
            return
        turns = entry.turns + added
        complete = entry.complete and len(turns) <= self._keep
        kept = turns[max(len(turns) - self._keep, 0) :]
        self._entries.put(key, _Recent(conversation_id, version, kept, complete))

    def clear(self) -> None:
        self._entries.clear()
