"""``Outbox``: every Bot API write of the adapter, paced and retried in one place.

Telegram's errors, as PTB raises them, and what happens to each::

    TelegramError
    ├── RetryAfter (429)   the chat's next slot moves back by retry_after; a write that
    │                      must arrive waits and tries again (up to flood_retries), a
    │                      progress edit is skipped (FloodDeferred: a fresher one follows)
    ├── Forbidden (403)    the user blocked the bot, or it left the group:
    │                      ChatUnavailable, which the reply handles quietly
    ├── ChatMigrated       the group became a supergroup: the write goes to the new id
    └── NetworkError       retried with exponential backoff (capped at retry_backoff_max):
        │                  a write that must arrive for up to delivery_patience seconds
        │                  (an outage of minutes loses no reply), others network_retries
        │                  times
        ├── TimedOut
        └── BadRequest     not retried: "can't parse entities" becomes MarkupRefused
                           (the reply goes on as plain text), "message to edit not
                           found" MessageGone (it is sent afresh), "chat not found"
                           ChatUnavailable; "message is not modified" means done

A timed-out ``sendMessage`` may in fact have been delivered; it is sent again all the
same, as a duplicate line is better than a lost reply.

``sendMessage`` and ``editMessageText`` (every reply's writes) go out through
:func:`post`: the adapter reads only the message id of Telegram's answer, and PTB's
typed methods would build a whole :class:`telegram.Message` from it (about 170
attributes: a twentieth of the bot's CPU per message).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from adapters.streaming import MarkupRefused, MessageGone, WriteSkipped
from adapters.telegram.options import TelegramOptions
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.settings import TelegramSettings
from bot.backoff import Backoff
from bot.messages import Action

log = logging.getLogger(__name__)

T = TypeVar("T")


class ChatUnavailable(Exception):
    """The bot may not write to this chat any more (blocked, removed, chat gone)."""


class FloodDeferred(WriteSkipped):
    """A write that need not arrive was skipped because of a 429; the chat's pacer
    already holds the wait."""


@dataclass(slots=True)
class Target:
    """Where a reply goes: the chat, its forum topic, and the message it answers (in
    groups the first message of a reply quotes it, so it is clear who is answered)."""

    chat_id: int
    private: bool
    thread_id: int | None = None
    reply_to: int | None = None


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds, whichever type this PTB version returns.

    PTB 22.2 began moving the attribute from int to timedelta and warns on access
    unless the process opted in with ``PTB_TIMEDELTA``; both shapes are accepted here,
    so the warning (about the type, not about us) carries no information.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


def is_parse_error(exc: BadRequest) -> bool:
    message = exc.message.lower()
    return "parse entities" in message or "can't find end" in message


def is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def is_message_gone(exc: BadRequest) -> bool:
    message = exc.message.lower()
    return "message to edit not found" in message or "message_id_invalid" in message


#: Telegram's limit on a button's callback data, in bytes.
MAX_CALLBACK_DATA = 64


def keyboard(actions: Sequence[Action]) -> InlineKeyboardMarkup | None:
    """The reply's buttons, one per row; pressing one sends its command back as the
    callback query's data (what does not fit Telegram's 64 bytes is left out: the
    reply's text names every typed form anyway)."""
    rows = [
        [InlineKeyboardButton(action.label, callback_data=action.command)]
        for action in actions
        if len(action.command.encode()) <= MAX_CALLBACK_DATA
    ]
    return InlineKeyboardMarkup(rows) if rows else None


async def post(bot: Bot, method: str, params: dict[str, object]) -> object:
    """Call the Bot API ``method`` with ``params`` (None values left out) and return its
    result as Telegram sent it (JSON), without turning it into PTB's objects.

    The request goes through the bot's own ``_post``, as every typed method of PTB's
    does, so the encoding of the parameters (objects as JSON), the transport, the rate
    limiter of an ``ExtBot`` and the mapping of Telegram's errors to
    :class:`~telegram.error.TelegramError` are PTB's. (``Bot.do_api_request``, the public
    form, warns on every call of a method that has a typed one.)"""
    return await bot._post(method, {k: v for k, v in params.items() if v is not None})


def sent_message_id(result: object) -> int:
    """The id of the message a ``sendMessage`` answer describes."""
    message_id = result.get("message_id") if isinstance(result, dict) else None
    if type(message_id) is not int:
        raise TelegramError("Telegram's answer to sendMessage names no message")
    return message_id


@asynccontextmanager
async def _no_turn() -> AsyncIterator[None]:
    yield


class Outbox:
    """Sends, edits, deletes and typing actions for replies, through one pacer."""

    def __init__(
        self, bot: Bot, pacer: ChatPacer, settings: TelegramSettings, options: TelegramOptions
    ):
        self._settings = settings
        self._bot = bot
        self._pacer = pacer
        self._options = options
        self._backoff = Backoff(options.retry_backoff, options.retry_backoff_max)
        # Requests beyond the HTTP pool queue here, for as long as it takes, rather than
        # in the pool, where the wait counts against pool_timeout: a busy minute must
        # not turn into timeouts and retries.
        self._slots = asyncio.Semaphore(options.connection_pool_size)

    async def send(
        self,
        target: Target,
        text: str,
        *,
        html: bool,
        quote: bool,
        must_arrive: bool,
        buttons: InlineKeyboardMarkup | None = None,
    ) -> int:
        """Send a message (with ``buttons`` under it); its id. Raises
        :class:`~adapters.streaming.MarkupRefused` when Telegram cannot parse its HTML."""

        async def op(chat_id: int) -> int:
            reply = None
            if quote and target.reply_to is not None:
                reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True)
            params: dict[str, object] = {
                "chat_id": chat_id,
                "text": text,
                "parse_mode": ParseMode.HTML if html else None,
                "message_thread_id": target.thread_id,
                "reply_parameters": reply,
                "reply_markup": buttons,
            }
            return sent_message_id(await post(self._bot, "sendMessage", params))

        try:
            return await self._call(target, op, must_arrive=must_arrive)
        except BadRequest as exc:
            if html and is_parse_error(exc):
                raise MarkupRefused(exc.message) from exc
            raise

    async def edit(
        self,
        target: Target,
        message_id: int,
        text: str,
        *,
        html: bool,
        must_arrive: bool,
        buttons: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Edit a message's text (and buttons); done already when it shows them. Raises
        :class:`~adapters.streaming.MessageGone` when the message was deleted, and
        :class:`~adapters.streaming.MarkupRefused` when Telegram cannot parse its HTML."""

        async def op(chat_id: int) -> None:
            params: dict[str, object] = {
                "chat_id": chat_id,
                "message_id": message_id,
                "text": text,
                "parse_mode": ParseMode.HTML if html else None,
                "reply_markup": buttons,
            }
            await post(self._bot, "editMessageText", params)

        try:
            await self._call(target, op, must_arrive=must_arrive)
        except BadRequest as exc:
            if is_not_modified(exc):
                return
            if is_message_gone(exc):
                raise MessageGone(exc.message) from exc
            if html and is_parse_error(exc):
                raise MarkupRefused(exc.message) from exc
            raise

    async def drop_buttons(self, target: Target, message_id: int) -> None:
        """Take the buttons off a message once one was pressed (best effort)."""

        async def op(chat_id: int) -> None:
            await self._bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)

        try:
            await self._call(target, op, must_arrive=False, paced=False, retries=0)
        except (BadRequest, FloodDeferred, NetworkError, ChatUnavailable) as exc:
            log.debug("could not remove a message's buttons: %s", type(exc).__name__)

    async def delete(self, target: Target, message_id: int) -> None:
        """Remove a leftover piece of a longer draft. A 429 is waited out like a final
        write's (a draft left showing would look like part of the reply); any other
        failure is only logged: the final text is out already."""

        async def op(chat_id: int) -> None:
            await self._bot.delete_message(chat_id, message_id)

        try:
            await self._call(target, op, must_arrive=True, paced=False)
        except (BadRequest, NetworkError, RetryAfter) as exc:
            log.debug("could not delete a leftover message: %s", type(exc).__name__)

    async def typing(self, target: Target, *, wanted: Callable[[], bool]) -> None:
        """Best effort "typing…"; never paced (it is not a message), never retried, and
        skipped when ``wanted()`` turned false while it waited for a connection."""

        async def op(chat_id: int) -> None:
            if wanted():
                await self._bot.send_chat_action(
                    chat_id, ChatAction.TYPING, message_thread_id=target.thread_id
                )

        try:
            await self._call(target, op, must_arrive=False, paced=False, retries=0)
        except (BadRequest, FloodDeferred, NetworkError) as exc:
            log.debug("typing action failed: %s", type(exc).__name__)

    async def _call(
        self,
        target: Target,
        op: Callable[[int], Awaitable[T]],
        *,
        must_arrive: bool,
        paced: bool = True,
        retries: int | None = None,
    ) -> T:
        network_retries = self._options.network_retries if retries is None else retries
        interval = self._settings.edit_interval(target.private)
        floods = failures = 0
        # a write that must arrive outlasts an outage (until delivery_patience is spent)
        patient = must_arrive and retries is None
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            turn = self._pacer.turn(target.chat_id, interval) if paced else _no_turn()
            try:
                async with turn, self._slots:
                    return await op(target.chat_id)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                self._pacer.hold(target.chat_id, wait)
                floods += 1
                log.info("Telegram asked to wait %.1f s before writing to a chat", wait)
                if not must_arrive:
                    raise FloodDeferred(f"429, retry after {wait} s") from exc
                if floods > self._options.flood_retries:
                    raise
                if not paced:
                    await asyncio.sleep(wait)
            except ChatMigrated as exc:
                log.info("a group became a supergroup; writing to its new id")
                target.chat_id = exc.new_chat_id
            except Forbidden as exc:
                raise ChatUnavailable(str(exc)) from exc
            except BadRequest as exc:
                if "chat not found" in exc.message.lower():
                    raise ChatUnavailable(str(exc)) from exc
                raise
            except NetworkError as exc:  # TimedOut included; BadRequest is handled above
                failures += 1
                delay = self._backoff.delay(failures)
                if patient:
                    if loop.time() + delay - started > self._settings.delivery_patience:
                        log.warning(
                            "Telegram unreachable for %.0f s: a reply is given up",
                            loop.time() - started,
                        )
                        raise
                elif failures > network_retries:
                    raise
                # The class only: a transport error's text may carry the URL, and the
                # URL carries the token.
                log.info("Telegram request failed (%s); retry in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
