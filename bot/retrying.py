"""Trying a store again after a transient failure, and appending turns exactly once.

A store behind a network fails in two ways that look the same to the caller: before
the request did anything, or after it was applied (the answer was lost on the way
back). A read is simply tried again. An append is not: it may already be written, so
before appending again the caller reads the conversation and looks for its own turns
(:func:`find_stored`); the engine does that in its ``_append``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.backoff import FULL_JITTER, Backoff
from bot.errors import StoreUnavailable
from bot.messages import ConversationKey, NewTurn, Turn

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoreRetry:
    """How often, and after which pauses, a transient store failure is tried again.

    The pause before try ``n + 1`` is random in ``[0, backoff * 2**(n - 1)]`` (capped at
    ``max_backoff``): "full jitter", so that many callers that failed together do not
    come back together.
    """

    #: Tries in all, the first included; 1 never tries again.
    attempts: int = 3
    backoff: float = 0.05
    max_backoff: float = 1.0

    def pause(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        return Backoff(self.backoff, self.max_backoff, FULL_JITTER).delay(failures)


async def retry_transient(
    call: Callable[[], Awaitable[T]],
    policy: StoreRetry,
    *,
    on_retry: Callable[[StoreUnavailable], None] | None = None,
    failed: StoreUnavailable | None = None,
) -> T:
    """``await call()``, tried again on :class:`StoreUnavailable` up to the policy's
    attempts; the last failure is raised. Only for calls that may safely run twice
    (reads, and writes that set rather than add). ``failed``: the first try was already
    made by the caller, and failed so (a caller's own first try costs no coroutine)."""
    first = 1
    if failed is not None:
        if policy.attempts <= 1:
            raise failed
        if on_retry is not None:
            on_retry(failed)
        await asyncio.sleep(policy.pause(1))
        first = 2
    for failures in range(first, policy.attempts):
        try:
            return await call()
        except StoreUnavailable as exc:
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(policy.pause(failures))
    return await call()


def find_stored(window: Sequence[Turn], turns: Sequence[NewTurn]) -> tuple[Turn, ...] | None:
    """The stored copies of ``turns`` when they are in ``window`` (one after another,
    equal in role, text, author and creation time), newest occurrence first; else None.

    The creation time is the caller's clock reading when it made the turn, so a turn
    another message wrote with the same words is not mistaken for ours."""
    count = len(turns)
    if count == 0:
        return ()
    for end in range(len(window), count - 1, -1):
        run = tuple(window[end - count : end])
        if all(_same(stored, new) for stored, new in zip(run, turns, strict=True)):
            return run
    return None


def _same(stored: Turn, new: NewTurn) -> bool:
    return (stored.role, stored.text, stored.author, stored.created_at) == (
        new.role,
        new.text,
        new.author,
        new.created_at,
    )


class UnsureAppends:
    """Appends of this process whose outcome it could not learn, per conversation.

    An append failed transiently and so did the read that would have shown whether it
    was applied: the user is told it failed, though it may be stored. What they send
    next to say it again (the same message, or ``/retry`` after a lost reply) is matched
    against these exact turns (:func:`find_stored`: equal role, text, author and
    creation time), so that a turn applied after all is used rather than stored twice.
    At most ``per_key`` entries per conversation and ``capacity`` conversations.
    """

    def __init__(self, capacity: int = 4096, per_key: int = 8) -> None:
        self._capacity = capacity
        self._per_key = per_key
        self._entries: OrderedDict[ConversationKey, list[tuple[NewTurn, ...]]] = OrderedDict()

    def note(self, key: ConversationKey, turns: Sequence[NewTurn]) -> None:
        entries = self._entries.setdefault(key, [])
        entries.append(tuple(turns))
        del entries[: -self._per_key]
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def take(
        self, key: ConversationKey, matches: Callable[[tuple[NewTurn, ...]], bool]
    ) -> tuple[NewTurn, ...] | None:
        """The newest entry of ``key`` that ``matches``, forgotten; else None."""
        entries = self._entries.get(key, [])
        for index in range(len(entries) - 1, -1, -1):
            if matches(entries[index]):
                found = entries.pop(index)
                if not entries:
                    del self._entries[key]
                return found
        return None

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())
