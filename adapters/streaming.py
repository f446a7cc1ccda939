"""One reply shown while it is written, on any platform whose messages can be edited.

The policy, written once for every platform (Telegram, Discord):

* the text arrives as deltas, as fast as the backend writes; they pile up here and
  never wait for the platform;
* until the first text, nothing is shown (the platform's "typing…" may be, from
  ``first_delay`` on); a reply complete within ``first_delay`` of its first text goes
  out as one message, without a draft and an edit;
* then one writer shows the text so far, ending in the platform's cursor, no faster
  than the platform's pace: it waits for its slot, then writes the freshest text, so a
  slow platform sees fewer, larger steps and no text is ever dropped;
* the text is cut into pieces (messages); pieces that changed are edited, new ones
  posted, and once final, pieces the final text no longer needs are removed;
* the final text replaces the draft entirely (an error reported after some text
  included) and must arrive: the platform retries it; a draft write that fails is
  skipped, as the next one carries newer text.

What differs per platform is a small :class:`Surface`: how text becomes pieces, how
piece ``i`` is shown or removed, and the pace. Its errors tell the policy what happened:
:class:`MarkupRefused` (the platform cannot parse the piece's markup: the rest of the
reply goes out as plain text), :class:`MessageGone` (the message was deleted meanwhile:
the piece is posted afresh) and :class:`WriteSkipped` (a draft write that need not
arrive did not). Anything else ends the rendering and is raised by
:meth:`StreamedReply.finish`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, Self

from bot.messages import Action

log = logging.getLogger(__name__)

#: Shown for a reply with no text: platforms refuse an empty message.
EMPTY_REPLY = "…"
#: Tries of one piece's write when the platform answers MessageGone or MarkupRefused
#: (each needs one more at most: post afresh, send as plain text).
_PIECE_TRIES = 3

#: Shows "typing…" once, unless ``wanted()`` turned false while it waited.
Typing = Callable[[Callable[[], bool]], Awaitable[None]]


class MarkupRefused(Exception):
    """The platform could not parse a piece's markup; its plain form may go instead."""


class MessageGone(Exception):
    """The message of a piece no longer exists (deleted meanwhile). The surface has
    forgotten it: showing the piece again posts a new message."""


class WriteSkipped(Exception):
    """A draft write that need not arrive did not (rate limited, or failing past its
    retries); the next write carries newer text."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One message of a reply: its text with the platform's markup, and the same text
    plain (sent instead once the platform refuses the markup)."""

    markup: str
    plain: str

    def content(self, plain: bool) -> str:
        return self.plain if plain else self.markup


class Surface(Protocol):
    """What a platform supplies to show one reply."""

    def render(self, text: str, *, partial: bool) -> list[Piece]:
        """``text`` as the pieces to show; with ``partial``, the last one ends in the
        platform's cursor. No pieces for blank text."""

    async def pace(self) -> None:
        """Wait until the next write may go (without taking its slot)."""

    async def show(
        self, index: int, content: str, *, final: bool, plain: bool, actions: tuple[Action, ...]
    ) -> None:
        """Show ``content`` as piece ``index``: edit its message, or post one when the
        piece has none (``index`` is at most the number of pieces posted). ``plain``
        says ``content`` carries no markup; ``actions`` go as buttons under it. A write
        with ``final`` must arrive (the surface retries it); others may raise
        :class:`WriteSkipped`."""

    async def remove(self, index: int) -> None:
        """Delete the message of piece ``index``, the last one posted (never 0): a
        final text shorter than its draft needs fewer messages."""


class StreamedReply:
    """One reply being shown through a :class:`Surface`. Use as ``async with``
    (entering starts the writer), :meth:`append` its deltas, then :meth:`finish`."""

    def __init__(
        self,
        surface: Surface,
        *,
        first_delay: float = 0.0,
        typing: Typing | None = None,
        typing_interval: float = 4.0,
    ):
        self._surface = surface
        self._first_delay = first_delay
        self._typing = typing
        self._typing_interval = typing_interval
        self._parts: list[str] = []
        self._final: tuple[str, tuple[Action, ...]] | None = None
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._shown: list[str] = []
        self._plain = False
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._writer = asyncio.create_task(self._write(), name="reply-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # ended without finish(): nobody else will hear of it
            log.warning("a reply's draft failed: %s", type(exc).__name__)

    def append(self, delta: str) -> None:
        """Add a piece of text; it is shown with the next write. Never waits."""
        if delta and self._final is None:
            self._parts.append(delta)
            self._wake.set()

    async def finish(self, text: str, actions: tuple[Action, ...] = ()) -> None:
        """Show ``text`` as the reply (after the write in flight, if any), with
        ``actions`` as buttons under its last message. Returns once it is shown; raises
        what ended the rendering, if anything did."""
        self._final = (text, actions)
        self._finished.set()
        self._wake.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer

    async def _write(self) -> None:
        await self._first_text()
        if not self._finished.is_set():
            await _wait(self._finished, self._first_delay)
        while True:
            if not self._finished.is_set():
                await self._surface.pace()
            self._wake.clear()
            final = self._finished.is_set()
            with contextlib.suppress(WriteSkipped):  # the next write has newer text
                await self._sync(final)
            if final:
                return
            await self._wake.wait()

    async def _first_text(self) -> None:
        """Wait for the reply's first text (or its end), showing "typing…" from
        ``first_delay`` on: a reply that shows by then needs none."""
        if self._typing is None:
            await self._wake.wait()
            return
        wait = self._first_delay
        while not await _wait(self._wake, wait):
            await self._typing(lambda: not self._wake.is_set())
            wait = self._typing_interval

    def _pieces(self, final: bool) -> list[Piece]:
        render = self._surface.render
        if final:
            assert self._final is not None
            return render(self._final[0], partial=False) or render(EMPTY_REPLY, partial=False)
        return render("".join(self._parts), partial=True)

    async def _sync(self, final: bool) -> None:
        """Make the platform show the current pieces: edit what changed, post what is
        new, and (once final) remove drafts the final text no longer needs."""
        pieces = self._pieces(final)
        actions = self._final[1] if final and self._final is not None else ()
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            buttons = actions if index == last else ()
            shown = self._shown[index] if index < len(self._shown) else None
            if shown != piece.content(self._plain) or buttons:
                await self._put(index, piece, final, buttons)
        if final:
            while len(self._shown) > len(pieces):
                # Not tried again: the surface forgets a message before deleting it.
                await self._surface.remove(len(self._shown) - 1)
                self._shown.pop()

    async def _put(
        self, index: int, piece: Piece, final: bool, actions: tuple[Action, ...]
    ) -> None:
        for tries_left in range(_PIECE_TRIES - 1, -1, -1):
            content = piece.content(self._plain)
            try:
                await self._surface.show(
                    index, content, final=final, plain=self._plain, actions=actions
                )
            except MarkupRefused:
                if self._plain or not tries_left:
                    raise
                log.warning("the platform refused a reply's formatting; sending it as plain text")
                self._plain = True
                continue
            except MessageGone:  # deleted by the user meanwhile: the next show posts it
                if not tries_left:
                    raise
                continue
            if index < len(self._shown):
                self._shown[index] = content
            else:
                self._shown.append(content)
            return


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``."""
    if not event.is_set() and seconds > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
    return event.is_set()
