"""What this process remembers of conversations, and why it can never be wrong.

Two kinds of memory, both bounded (least recently used go first):

* **Heads**: the last version, current cid and last seq seen of each key, and the last
  key each owner used. They are guesses: an append's condition checks its head, and a
  window is never served from a head alone (META is read for every message).
* **Turns**: the newest turns of recently used conversations. A turn is immutable: it is
  written once, under META's version condition, at a ``(key, cid, seq)`` that is never
  written again (a cid embeds its conversation's random uid, so even a conversation
  started after ``/forget`` has new keys). A cached turn is only served for the very
  ``(key, cid, seq)`` that META, read in the same message, asks for.

With these, the ``resolve_identity`` of a message also reads (in the same BatchGetItem)
its conversation's META and only the turns not remembered yet: usually none but the
couple of slots past the last known one (``SLACK``), in case another process wrote
there. ``load_window`` then needs no call of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from bot.messages import ConversationKey, OwnerId, Turn
from bot.store.base import ConversationWindow
from bot.store.dynamo import keys
from bot.store.dynamo.codec import Item
from bot.store.dynamo.items import Head, last_turn_of, turn_of, window_of
from bot.store.lru import Lru

#: Turn slots past the last known one that a prefetch also reads, so that a message
#: another process answered meanwhile still leaves the prefetched window complete.
SLACK: Final = 2
#: How long a prefetch may wait for its ``load_window`` (seconds): normally microseconds.
PREFETCH_TTL: Final = 5.0
#: Most keys one BatchGetItem takes.
BATCH_KEYS: Final = 100


@dataclass(slots=True)
class Run:
    """Consecutive turns of one conversation, oldest first."""

    cid: str
    turns: list[Turn]


@dataclass(frozen=True, slots=True)
class Prefetch:
    """A key's META and turns read along with an identity, for its next window."""

    key: ConversationKey
    cid: str | None  # the conversation whose turns were asked for
    seqs: tuple[int, ...]
    at: float
    meta: Item | None = None
    turns: dict[int, Turn] = field(default_factory=dict)


class Recent:
    """Heads, recent turns and pending prefetches of one store (see the module doc)."""

    def __init__(self, keys_remembered: int, conversations_remembered: int) -> None:
        self._heads: Lru[ConversationKey, Head] = Lru(keys_remembered)
        self._last_key: Lru[OwnerId, ConversationKey] = Lru(keys_remembered)
        self._runs: Lru[ConversationKey, Run] = Lru(conversations_remembered)
        self._prefetched: dict[ConversationKey, Prefetch] = {}
        self.window_turns = 1  # the largest window asked for lately: what to prefetch

    # -- heads --------------------------------------------------------------------------

    def head(self, key: ConversationKey) -> Head | None:
        return self._heads.get(key)

    def seen(self, key: ConversationKey, head: Head) -> None:
        self._heads.put(key, head)
        self._last_key.put(key.owner, key)

    def wrote(self, key: ConversationKey, head: Head, turns: Sequence[Turn] = ()) -> None:
        """This process changed the key: ``head`` is how it is now."""
        self._prefetched.pop(key, None)
        self.seen(key, head)
        if head.cid is not None:
            self.remember(key, head.cid, turns)

    def forget(self, owner: OwnerId) -> None:
        """Drop everything about the owner's keys (they changed wholesale)."""
        self._heads.drop_where(lambda k, _: k.owner == owner)
        self._runs.drop_where(lambda k, _: k.owner == owner)
        self._last_key.pop(owner)
        for key in [k for k in self._prefetched if k.owner == owner]:
            del self._prefetched[key]

    # -- turns --------------------------------------------------------------------------

    def remember(self, key: ConversationKey, cid: str, turns: Iterable[Turn]) -> None:
        """Add consecutive turns of conversation ``cid`` of the key."""
        new = sorted(turns, key=lambda t: t.seq)
        if not new:
            return
        run = self._runs.get(key)
        if run is not None and run.cid == cid and run.turns:
            first, last = run.turns[0].seq, run.turns[-1].seq
            if new[0].seq <= last + 1 and new[-1].seq >= first - 1:  # overlaps or touches
                merged = {t.seq: t for t in run.turns} | {t.seq: t for t in new}
                new = [merged[s] for s in sorted(merged)]
        keep = max(self.window_turns, 1)
        self._runs.put(key, Run(cid, new[-keep:]))

    def turns(self, key: ConversationKey, cid: str) -> dict[int, Turn]:
        run = self._runs.get(key)
        return {t.seq: t for t in run.turns} if run is not None and run.cid == cid else {}

    def window(
        self, meta: Item | None, max_turns: int, known: dict[int, Turn]
    ) -> ConversationWindow | None:
        """The window META describes, if ``known`` holds all its turns."""
        head = Head.of(meta)
        if head.cid is None or head.last_seq == 0 or max_turns <= 0:
            return window_of(meta, ())
        wanted = range(max(1, head.last_seq - max_turns + 1), head.last_seq + 1)
        if any(seq not in known for seq in wanted):
            return None
        return window_of(meta, [known[seq] for seq in wanted])

    # -- prefetching --------------------------------------------------------------------

    def plan(self, owner: OwnerId) -> Prefetch | None:
        """What to read along with an identity that spoke for ``owner`` here before: the
        META of the key the owner used last and the turns its next window needs that
        are not remembered yet."""
        key = self._last_key.get(owner)
        if key is None:
            return None
        head = self._heads.get(key) or Head()
        if head.cid is None:
            return Prefetch(key, None, (), time.monotonic())
        have = self.turns(key, head.cid)
        wanted = range(max(1, head.last_seq - self.window_turns + 1), head.last_seq + SLACK + 1)
        seqs = tuple(seq for seq in wanted if seq not in have)[-(BATCH_KEYS - 3) :]
        return Prefetch(key, head.cid, seqs, time.monotonic())

    @staticmethod
    def keys_of(plan: Prefetch) -> list[keys.Key]:
        found = [keys.meta(plan.key)]
        if plan.cid is not None:
            found += [keys.turn(plan.key, plan.cid, seq) for seq in plan.seqs]
        return found

    def prefetched(self, plan: Prefetch, items: Sequence[Item]) -> None:
        """Keep what a prefetch read, for the ``load_window`` that comes next."""
        pk = keys.conversation_pk(plan.key)
        meta, turns = None, {}
        for item in items:
            if item.get(keys.PK) != pk:
                continue
            if item.get(keys.SK) == keys.META:
                meta = item
            else:
                turn = turn_of(item)
                turns[turn.seq] = turn
        now = time.monotonic()
        for stale in [k for k, p in self._prefetched.items() if now - p.at > PREFETCH_TTL]:
            del self._prefetched[stale]
        self._prefetched[plan.key] = Prefetch(plan.key, plan.cid, plan.seqs, plan.at, meta, turns)

    def refused(self, key: ConversationKey, meta: Item | None) -> Head:
        """A write found META as ``meta``: the engine's reload (a window of one turn)
        comes with it, thanks to the copy of the newest turn META carries."""
        head = Head.of(meta)
        self._heads.put(key, head)
        newest = last_turn_of(meta)
        turns = {newest.seq: newest} if newest is not None else {}
        self._prefetched[key] = Prefetch(key, head.cid, tuple(turns), time.monotonic(), meta, turns)
        return head

    def take(self, key: ConversationKey, max_turns: int) -> ConversationWindow | None:
        """The window from a prefetch of this key, if it is recent and complete."""
        self.window_turns = max(self.window_turns, max_turns)
        found = self._prefetched.pop(key, None)
        if found is None or time.monotonic() - found.at > PREFETCH_TTL:
            return None
        head = Head.of(found.meta)
        known = self._heads.get(key)
        if known is not None and known.version > head.version:
            return None  # this process wrote since it was read
        turns = found.turns if found.cid == head.cid else {}
        if head.cid is not None:
            turns = self.turns(key, head.cid) | turns
        window = self.window(found.meta, max_turns, turns)
        if window is not None:
            self.seen(key, head)
            if head.cid is not None:
                self.remember(key, head.cid, window.turns)
        return window
