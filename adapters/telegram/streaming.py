"""``ReplyStream``: one reply as Telegram shows it while it is being written.

The policy is the shared one (:mod:`adapters.streaming`): "typing…" until the first
words are out, a reply complete within ``first_message_delay`` sent as one message,
then edits no faster than the chat's pace allows, further messages for a reply longer
than one, the cursor (" …") until the final text replaces the draft. What Telegram adds,
in :class:`ChatSurface`: pieces in Telegram HTML (:func:`~adapters.telegram.render.render`),
the chat's pacer, the first message quoting the one it answers (in groups), and buttons
in the same request as the last piece's text. Its writes go through the
:class:`~adapters.telegram.delivery.Outbox`, which retries a final write until it
arrives; a draft write hit by a 429, or still failing after its network retries, is
skipped (the next one carries newer text).

When Telegram refuses the HTML (``can't parse entities``), the same pieces are sent
as plain text for the rest of the reply. A user who blocked the bot ends the
rendering quietly; the engine's stream is still read to its end, so the reply is
stored as usual.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from telegram.error import BadRequest, NetworkError, TelegramError

from adapters.streaming import MarkupRefused, MessageGone, Piece, StreamedReply, WriteSkipped
from adapters.telegram.delivery import ChatUnavailable, Outbox, Target, keyboard
from adapters.telegram.options import TelegramOptions
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.render import render
from adapters.telegram.settings import TelegramSettings
from bot.messages import Action, ReplyDone, ReplyEvent, TextDelta

log = logging.getLogger(__name__)


class ChatSurface:
    """Telegram's :class:`~adapters.streaming.Surface`: the messages of one reply in
    one chat, by piece."""

    def __init__(self, outbox: Outbox, pacer: ChatPacer, target: Target, options: TelegramOptions):
        self._outbox = outbox
        self._pacer = pacer
        self._target = target
        self._limit = options.max_message_chars
        self._ids: list[int | None] = []  # the message of each piece; None once gone

    def render(self, text: str, *, partial: bool) -> list[Piece]:
        return [Piece(p.html, p.plain) for p in render(text, self._limit, partial=partial)]

    async def pace(self) -> None:
        await self._pacer.ready(self._target.chat_id)

    async def show(
        self, index: int, content: str, *, final: bool, plain: bool, actions: tuple[Action, ...]
    ) -> None:
        buttons = keyboard(actions) if actions else None
        message_id = self._ids[index] if index < len(self._ids) else None
        try:
            if message_id is None:
                message_id = await self._outbox.send(
                    self._target,
                    content,
                    html=not plain,
                    quote=index == 0,
                    must_arrive=final,
                    buttons=buttons,
                )
                if index < len(self._ids):
                    self._ids[index] = message_id
                else:
                    self._ids.append(message_id)
                return
            try:
                await self._outbox.edit(
                    self._target,
                    message_id,
                    content,
                    html=not plain,
                    must_arrive=final,
                    buttons=buttons,
                )
            except MessageGone:
                self._ids[index] = None
                raise
        except NetworkError as exc:
            # A draft that failed past its retries is skipped like one hit by a 429: the
            # final text, retried on its own, must not be given up.
            if final or isinstance(exc, BadRequest):
                raise
            log.info("a Telegram draft write failed (%s); skipped", type(exc).__name__)
            raise WriteSkipped from exc

    async def remove(self, index: int) -> None:
        message_id = self._ids.pop(index)
        if message_id is not None:
            await self._outbox.delete(self._target, message_id)


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
        self._target = target
        self._settings = settings
        self._options = options
        self._surface = ChatSurface(outbox, pacer, target, options)

    async def deliver(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Read ``events`` to the end and render them; returns once the final text is
        delivered (or given up on, which is logged)."""
        done: ReplyDone | None = None
        reply = StreamedReply(
            self._surface,
            first_delay=self._settings.first_message_delay,
            typing=self._typing,
            typing_interval=self._options.typing_interval,
        )
        async with reply:
            async for event in events:
                if isinstance(event, TextDelta):
                    reply.append(event.text)
                elif isinstance(event, ReplyDone):
                    done = event
            if done is None:
                # The engine promises a ReplyDone. Without one, the draft keeps its
                # cursor: better visibly unfinished than looking complete.
                log.warning("a reply stream ended without its final text")
                return
            try:
                await reply.finish(done.shown, done.actions)
            except ChatUnavailable:
                log.info("a Telegram chat no longer accepts the bot's messages; reply dropped")
            except (TelegramError, MarkupRefused, MessageGone) as exc:
                log.warning("could not deliver a Telegram reply: %s", type(exc).__name__)

    async def _typing(self, wanted: Callable[[], bool]) -> None:
        await self._outbox.typing(self._target, wanted=wanted)
