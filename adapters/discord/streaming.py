"""Showing a reply on Discord while it is written: the shared policy
(:mod:`adapters.streaming`) over :class:`ReplySlots`.

:class:`ReplySlots` are the numbered messages of one reply (the first, then follow-ups
once the text outgrows 2000 characters). :class:`SlotsSurface` supplies what Discord
does its own way: the pieces are cut by :func:`~adapters.discord.render.split_message`,
with the cursor before any fence it closes; writes are spaced ``interval`` apart, each
slot counted from the end of the write before (a write waiting out a 429, which
discord.py sleeps through, holds the next one back); buttons go under the last message
in a request of their own (a failure there is only logged: the text names the typed
commands).

A draft write that fails is skipped (the next one carries newer text). The final text
must arrive: a show answered 503 is tried again with backoff (discord.py retries 429s
and 500, 502, 504 and 524 itself, and our REST client every 5xx, but discord.py raises a
503 at once); any other failure, or a 503 past the attempts, is raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Protocol, runtime_checkable

from adapters import streaming
from adapters.discord.errors import DiscordAPIError
from adapters.discord.render import CURSOR, LIMIT, split_message
from adapters.discord.settings import DiscordSettings
from adapters.streaming import Piece, Typing, WriteSkipped
from bot.backoff import Backoff
from bot.engine import Engine
from bot.messages import Action, Incoming, ReplyDone, ReplyKind, TextDelta

log = logging.getLogger(__name__)

ENGINE_FAILED = "Something went wrong on my side. Please try again in a moment."
#: Failures of a final show that are tried again here (see the module doc).
RETRIED_STATUSES = frozenset({503})
#: Tries of a final show, and the wait before the second (doubling after).
FINAL_ATTEMPTS = 4
RETRY_BACKOFF = 0.5
#: Seconds between two "typing…" triggers (Discord shows one for about 10 s).
TYPING_INTERVAL = 8.0


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


class SlotsSurface:
    """Discord's :class:`~adapters.streaming.Surface`: one reply's slots, paced."""

    def __init__(
        self,
        slots: ReplySlots,
        *,
        interval: float,
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
        self._backoff = Backoff(backoff)
        # What each message shows: buttons for an unchanged last piece go in a request
        # of their own, without editing its text to the same again.
        self._texts: list[str] = []
        self._next_write = 0.0

    def render(self, text: str, *, partial: bool) -> list[Piece]:
        # The cursor goes before any fence split_message closes, so it shows as the
        # last character of the text written so far.
        pieces = split_message(text + CURSOR if partial else text, self._limit)
        return [Piece(piece, piece) for piece in pieces]

    async def pace(self) -> None:
        delay = self._next_write - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    async def show(
        self, index: int, content: str, *, final: bool, plain: bool, actions: tuple[Action, ...]
    ) -> None:
        if index >= len(self._texts) or self._texts[index] != content:
            await self._write(index, content, final)
        if actions and isinstance(self._slots, ButtonSlots):
            try:
                await self._slots.offer(index, actions)
            except DiscordAPIError as exc:
                log.warning("discord: could not add a reply's buttons (HTTP %s)", exc.status)

    async def remove(self, index: int) -> None:
        del self._texts[index]
        await self._slots.remove(index)

    async def _write(self, index: int, content: str, final: bool) -> None:
        await self.pace()
        try:
            if final:
                await self._show_final(index, content)
            else:
                await self._slots.show(index, content)
        except DiscordAPIError as exc:
            if final:
                raise
            log.warning("discord: preview edit failed (HTTP %s); continuing", exc.status)
            raise WriteSkipped from exc
        finally:
            self._next_write = self._clock() + self._interval
        if index < len(self._texts):
            self._texts[index] = content
        else:
            self._texts.append(content)

    async def _show_final(self, index: int, content: str) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await self._slots.show(index, content)
                return
            except DiscordAPIError as exc:
                if exc.status not in RETRIED_STATUSES or attempt == self._attempts:
                    raise
                delay = self._backoff.delay(attempt)
                log.info(
                    "discord: showing a reply failed (HTTP %s); retry in %.1f s", exc.status, delay
                )
                await asyncio.sleep(delay)


class StreamedReply(streaming.StreamedReply):
    """One reply being shown in ``slots``. Use as ``async with``: entering starts the
    writer. A reply complete within ``first_delay`` of its first text is shown once;
    ``typing`` shows "typing…" from ``first_delay`` on until the first text (a reply
    whose first words come sooner needs none)."""

    def __init__(
        self,
        slots: ReplySlots,
        *,
        interval: float = 1.0,
        first_delay: float = 0.0,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = FINAL_ATTEMPTS,
        backoff: float = RETRY_BACKOFF,
        typing: Typing | None = None,
    ):
        surface = SlotsSurface(
            slots, interval=interval, limit=limit, clock=clock, attempts=attempts, backoff=backoff
        )
        super().__init__(
            surface, first_delay=first_delay, typing=typing, typing_interval=TYPING_INTERVAL
        )


async def deliver(
    engine: Engine,
    incoming: Incoming,
    slots: ReplySlots,
    options: DiscordSettings,
    *,
    typing: Typing | None = None,
) -> ReplyDone | None:
    """Run one message through the engine and show its reply; None when the engine
    has nothing to say (the message was not addressed to the bot). ``typing`` shows
    "typing…" while the first words keep the user waiting (see :class:`StreamedReply`).

    The engine answers every expected failure itself; should it raise anyway, the user
    is told instead of being left with a half-written message, and the error is logged.
    """
    done: ReplyDone | None = None
    reply = StreamedReply(
        slots,
        interval=options.edit_interval,
        first_delay=options.first_message_delay,
        typing=typing,
    )
    async with reply:
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
