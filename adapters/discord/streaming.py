"""Showing a reply while it is written: edits at a safe rate, coalesced, never lost.

:class:`StreamedReply` receives the engine's deltas as fast as they come and shows the
text so far through :class:`ReplySlots` (the numbered messages of one reply: the first,
then follow-ups once the text outgrows 2000 characters). One pump task edits at most
once per ``interval``; deltas that arrive while an edit is in flight (or waiting out a
429, which discord.py sleeps through) pile up and go out together in the next edit, so
the rate holds however fast the backend writes and no text is dropped. ``finish`` shows
the final text, which may differ from the deltas (an error replaces a partial reply).

A preview that fails is superseded by the next one. The final text must arrive: a show
answered 503 is tried again with backoff (discord.py retries 429s and 500, 502, 504
and 524 itself, and our REST client every 5xx, but discord.py raises a 503 at once);
any other failure, or a 503 past the attempts, is raised to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Protocol, Self, runtime_checkable

from adapters.discord.errors import DiscordAPIError
from adapters.discord.render import LIMIT, split_message
from bot.engine import Engine
from bot.messages import Action, Incoming, ReplyDone, ReplyKind, TextDelta

log = logging.getLogger(__name__)

#: Shown for a reply with no text: Discord refuses an empty message, and a deferred
#: interaction must be answered with something.
EMPTY_REPLY = "…"
#: Marks a message that is still being written.
WRITING = " ▌"
ENGINE_FAILED = "Something went wrong on my side. Please try again in a moment."
#: Failures of a final show that are tried again here (see the module doc).
RETRIED_STATUSES = frozenset({503})
#: Tries of a final show, and the wait before the second (doubling after).
FINAL_ATTEMPTS = 4
RETRY_BACKOFF = 0.5


class ReplySlots(Protocol):
    """The messages of one reply, by position: 0 is the first, then follow-ups."""

    async def show(self, index: int, text: str) -> None:
        """Post message ``index`` with ``text``, or edit it when it exists already.

        Indexes come in order: ``index`` is at most the number of messages posted.
        Raises :class:`~adapters.discord.errors.DiscordAPIError` when Discord refuses.
        """

    async def remove(self, index: int) -> None:
        """Delete message ``index`` (never 0), the last one posted: a final text
        shorter than its preview needs fewer messages."""


@runtime_checkable
class ButtonSlots(ReplySlots, Protocol):
    """Slots that can also put buttons under a message of the reply."""

    async def offer(self, index: int, actions: tuple[Action, ...]) -> None:
        """Show ``actions`` as buttons under message ``index`` (posted already)."""


class StreamedReply:
    """One reply being shown. Use as ``async with``: entering starts the pump."""

    def __init__(
        self,
        slots: ReplySlots,
        *,
        interval: float = 1.0,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = FINAL_ATTEMPTS,
        backoff: float = RETRY_BACKOFF,
    ):
        self._slots = slots
        self._interval = interval
        self._limit = limit
        self._clock = clock
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._parts: list[str] = []
        self._shown: list[str] = []
        self._next_edit = 0.0
        self._dirty = asyncio.Event()
        self._finishing = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        #: How many times a message was posted or edited.
        self.edits = 0

    async def __aenter__(self) -> Self:
        self._pump = asyncio.create_task(self._run_pump(), name="discord-reply-pump")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def append(self, delta: str) -> None:
        """Add a piece of text; it is shown with the next edit. Never waits."""
        if delta:
            self._parts.append(delta)
            self._dirty.set()

    async def finish(self, text: str, actions: tuple[Action, ...] = ()) -> None:
        """Stop previewing (after the edit in flight, if any) and show ``text``, with
        ``actions`` as buttons under its last message when the slots can show them
        (a failure there is only logged: the text names the typed commands)."""
        self._finishing.set()
        self._dirty.set()  # wakes a pump that waits for text
        pump, self._pump = self._pump, None
        if pump is not None:
            await pump
        await self._show(split_message(text, self._limit) or [EMPTY_REPLY], final=True)
        if actions and isinstance(self._slots, ButtonSlots):
            try:
                await self._slots.offer(len(self._shown) - 1, actions)
            except DiscordAPIError as exc:
                log.warning("discord: could not add a reply's buttons (HTTP %s)", exc.status)

    async def _run_pump(self) -> None:
        while not self._finishing.is_set():
            await self._dirty.wait()
            delay = self._next_edit - self._clock()
            if delay > 0:  # wait out the rate, unless the reply finishes meanwhile
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finishing.wait(), delay)
            if self._finishing.is_set():
                return
            self._dirty.clear()
            # The cursor goes before any fence split_message closes, so it shows as the
            # last character of the text written so far.
            preview = split_message("".join(self._parts) + WRITING, self._limit)
            await self._show(preview, final=False)

    async def _show(self, pieces: list[str], *, final: bool) -> None:
        for index, piece in enumerate(pieces):
            if index < len(self._shown) and self._shown[index] == piece:
                continue
            delay = self._next_edit - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if final:
                    await self._show_final(index, piece)
                else:
                    await self._slots.show(index, piece)
            except DiscordAPIError as exc:
                if final:
                    raise
                # A preview that failed is superseded by the next one, or the final.
                log.warning("discord: preview edit failed (HTTP %s); continuing", exc.status)
                return
            finally:
                self._next_edit = self._clock() + self._interval
            self.edits += 1
            if index < len(self._shown):
                self._shown[index] = piece
            else:
                self._shown.append(piece)
        while final and len(self._shown) > len(pieces):
            # Not tried again: the slots forget a message before asking to delete it.
            await self._slots.remove(len(self._shown) - 1)
            self._shown.pop()

    async def _show_final(self, index: int, piece: str) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await self._slots.show(index, piece)
                return
            except DiscordAPIError as exc:
                if exc.status not in RETRIED_STATUSES or attempt == self._attempts:
                    raise
                delay = self._backoff * 2 ** (attempt - 1)
                log.info(
                    "discord: showing a reply failed (HTTP %s); retry in %.1f s", exc.status, delay
                )
                await asyncio.sleep(delay)


async def deliver(
    engine: Engine, incoming: Incoming, slots: ReplySlots, *, interval: float
) -> ReplyDone | None:
    """Run one message through the engine and show its reply; None when the engine
    has nothing to say (the message was not addressed to the bot).

    The engine answers every expected failure itself; should it raise anyway, the user
    is told instead of being left with a half-written message, and the error is logged.
    """
    done: ReplyDone | None = None
    async with StreamedReply(slots, interval=interval) as reply:
        try:
            async with aclosing(engine.handle(incoming)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        reply.append(event.text)
                    else:
                        done = event
        except Exception:
            log.exception("discord: the engine failed on a %s message", incoming.platform)
            done = ReplyDone(ENGINE_FAILED, ReplyKind.ERROR)
        if done is not None:
            await reply.finish(done.shown, done.actions)
    return done
