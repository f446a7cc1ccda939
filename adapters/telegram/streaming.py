"""``ReplyStream``: one reply as Telegram shows it while it is being written.

"typing…" until the first words are out; then the reply's message is edited as text
arrives, no faster than the chat's pace allows (a write waits for its slot, then
carries the freshest text, so slow chats see fewer, larger steps); a reply longer than
a message grows into further messages. While streaming, the text ends in a cursor
(" …"), so a half reply never looks complete; the final text replaces the draft
entirely (an error reported after some text included) and is retried until it
arrives, where a progress write hit by a 429, or still failing after its network
retries, is simply skipped (the next one carries newer text).

When Telegram refuses the HTML (``can't parse entities``), the same pieces are sent
as plain text for the rest of the reply. A user who blocked the bot ends the
rendering quietly; the engine's stream is still read to its end, so the reply is
stored as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, TelegramError

from adapters.telegram.delivery import (
    ChatUnavailable,
    FloodDeferred,
    Outbox,
    Target,
    is_message_gone,
    is_parse_error,
    keyboard,
)
from adapters.telegram.options import TelegramOptions
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.render import Piece, render
from adapters.telegram.settings import TelegramSettings
from bot.messages import ReplyDone, ReplyEvent, TextDelta

log = logging.getLogger(__name__)

#: Sent when a reply's final text is blank (Telegram refuses empty messages).
EMPTY_REPLY = "…"


@dataclass(slots=True)
class _Sent:
    message_id: int
    shown: str  # what the message shows: its HTML, or its plain text after a fallback


class ReplyStream:
    """Renders the reply events of one message into one chat. Use once."""

    def __init__(
        self,
        outbox: Outbox,
        pacer: ChatPacer,
        target: Target,
        settings: TelegramSettings,
        options: TelegramOptions,
    ):
        self._outbox = outbox
        self._pacer = pacer
        self._target = target
        self._settings = settings
        self._options = options
        self._parts: list[str] = []
        self._done: ReplyDone | None = None
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._sent: list[_Sent] = []
        self._plain = False
        self._unavailable = False

    async def deliver(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Read ``events`` to the end and render them; returns once the final text is
        delivered (or given up on, which is logged)."""
        writer = asyncio.create_task(self._write(), name="telegram-reply-writer")
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    self._parts.append(event.text)
                    self._wake.set()
                elif isinstance(event, ReplyDone):
                    self._done = event
                    self._finished.set()
                    self._wake.set()
            if self._done is None:
                # The engine promises a ReplyDone. Without one, the draft keeps its
                # cursor: better visibly unfinished than looking complete.
                log.warning("a reply stream ended without its final text")
                return
            await writer
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self) -> None:
        try:
            await self._typing_until_text()
            if not self._finished.is_set():
                await _wait(self._finished, self._settings.first_message_delay)
            while not self._unavailable:
                if not self._finished.is_set():
                    await self._pacer.ready(self._target.chat_id)
                self._wake.clear()
                final = self._finished.is_set()
                try:
                    await self._sync(final)
                except FloodDeferred:
                    pass  # a 429: the pacer holds the wait; the next write has newer text
                except NetworkError as exc:
                    # A draft that failed past its retries is skipped like one hit by a
                    # 429: the final text, retried on its own, must not be given up.
                    if final or isinstance(exc, BadRequest):
                        raise
                    log.info("a Telegram draft write failed (%s); skipped", type(exc).__name__)
                if final:
                    return
                await self._wake.wait()
        except ChatUnavailable:
            self._unavailable = True
            log.info("a Telegram chat no longer accepts the bot's messages; reply dropped")
        except TelegramError as exc:
            log.warning("could not deliver a Telegram reply: %s", type(exc).__name__)

    async def _typing_until_text(self) -> None:
        """Wait for the reply's first text (or its end), showing "typing…" from
        ``first_message_delay`` on: a reply that shows by then needs none."""
        wait = self._settings.first_message_delay
        while not await _wait(self._wake, wait):
            await self._outbox.typing(self._target, wanted=lambda: not self._wake.is_set())
            wait = self._options.typing_interval

    def _pieces(self, final: bool) -> list[Piece]:
        limit = self._options.max_message_chars
        if final:
            assert self._done is not None
            return render(self._done.shown, limit) or render(EMPTY_REPLY, limit)
        return render("".join(self._parts), limit, partial=True)

    async def _sync(self, final: bool) -> None:
        """Make the chat show the current pieces: edit what changed, send what is new,
        and (once final) delete drafts the final text no longer needs."""
        pieces = self._pieces(final)
        # a reply's buttons go under its last message, once final
        buttons = keyboard(self._done.actions) if final and self._done is not None else None
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            markup = buttons if index == last else None
            if index < len(self._sent):
                if self._sent[index].shown != self._content(piece) or markup is not None:
                    await self._edit(index, piece, final, markup)
            else:
                await self._send(index, piece, final, markup)
        if final:
            for leftover in self._sent[len(pieces) :]:
                await self._outbox.delete(self._target, leftover.message_id)
            del self._sent[len(pieces) :]

    def _content(self, piece: Piece) -> str:
        return piece.plain if self._plain else piece.html

    async def _send(
        self, index: int, piece: Piece, final: bool, buttons: InlineKeyboardMarkup | None = None
    ) -> None:
        quote = index == 0
        try:
            message_id = await self._outbox.send(
                self._target,
                self._content(piece),
                html=not self._plain,
                quote=quote,
                must_arrive=final,
                buttons=buttons,
            )
        except BadRequest as exc:
            if self._plain or not is_parse_error(exc):
                raise
            self._fall_back_to_plain()
            message_id = await self._outbox.send(
                self._target,
                piece.plain,
                html=False,
                quote=quote,
                must_arrive=final,
                buttons=buttons,
            )
        sent = _Sent(message_id, self._content(piece))
        if index < len(self._sent):
            self._sent[index] = sent
        else:
            self._sent.append(sent)

    async def _edit(
        self, index: int, piece: Piece, final: bool, buttons: InlineKeyboardMarkup | None = None
    ) -> None:
        message_id = self._sent[index].message_id
        try:
            await self._outbox.edit(
                self._target,
                message_id,
                self._content(piece),
                html=not self._plain,
                must_arrive=final,
                buttons=buttons,
            )
        except BadRequest as exc:
            if is_message_gone(exc):  # deleted by the user meanwhile: send it afresh
                await self._send(index, piece, final, buttons)
                return
            if self._plain or not is_parse_error(exc):
                raise
            self._fall_back_to_plain()
            await self._outbox.edit(
                self._target,
                message_id,
                piece.plain,
                html=False,
                must_arrive=final,
                buttons=buttons,
            )
        self._sent[index].shown = self._content(piece)

    def _fall_back_to_plain(self) -> None:
        log.warning("Telegram refused a reply's formatting; sending it as plain text")
        self._plain = True


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``."""
    if not event.is_set() and seconds > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
    return event.is_set()
