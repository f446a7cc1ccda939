"""Telegram updates -> :class:`~bot.messages.Incoming`, and the one update callback.

What is answered:

* new messages from people in private chats: every text is for the bot;
* in groups and supergroups, a text that mentions the bot (``@name``, or a mention of
  its user), replies to one of its messages, or is a command (``/cmd``, or
  ``/cmd@name`` naming this bot; ``/cmd@other_bot`` is left to that bot). Other group
  messages still go to the engine, unaddressed: it answers nothing to them;
* stickers, photos, voice and other non-text messages get a short polite answer (in
  groups only when addressed).

Ignored: edited messages, channel posts and every other update kind, messages from
bots (other bots, and anonymous group admins, who speak through one), and service
messages (members joining, pins, …).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from adapters.telegram.delivery import Outbox, Target
from adapters.telegram.options import TelegramOptions
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.streaming import ReplyStream
from bot.engine import Engine
from bot.messages import Incoming, ReplyDone, ReplyEvent, ReplyKind

PLATFORM = "telegram"
NON_TEXT_REPLY = (
    "I can only read text messages, sorry — stickers, photos and voice notes pass me by. "
    "Write to me in words and I'll answer."
)
_GROUPS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is (from getMe): how it recognises messages meant for it."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message worth looking at: the normalised message, where answers go, and
    whether it had no text (stickers, photos, …)."""

    incoming: Incoming
    target: Target
    non_text: bool = False


def read_update(update: Update, me: BotIdentity) -> Inbound | None:
    """Normalise an update, or None when the bot ignores it (see the module doc)."""
    message = update.message  # new messages only: edits and channel posts live elsewhere
    if message is None:
        return None
    user = message.from_user
    if user is None or user.is_bot:
        return None
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        private = True
    elif chat.type in _GROUPS:
        private = False
    else:
        return None
    text = message.text
    non_text = text is None
    if non_text and message.effective_attachment is None:
        return None  # a service message: someone joined, a pin, a topic created …
    addressed = private or is_addressed(message, me)
    if text is not None:
        text = strip_mention(text, me.username)
    target = Target(
        chat_id=chat.id,
        private=private,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        reply_to=None if private else message.message_id,
    )
    incoming = Incoming(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=user.full_name,
        chat_id=str(chat.id),
        private=private,
        text=text or "",
        addressed=addressed,
    )
    return Inbound(incoming, target, non_text)


def is_addressed(message: Message, me: BotIdentity) -> bool:
    """Whether a group message is meant for the bot (see the module doc)."""
    if message.text is not None:
        entities = message.parse_entities()
    else:
        entities = message.parse_caption_entities()
    name = me.username.lower()
    mentioned = False
    for entity, fragment in entities.items():
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            _, _, target = fragment.partition("@")
            return not target or target.lower() == name
        if entity.type == MessageEntity.MENTION:
            mentioned = mentioned or fragment[1:].lower() == name
        elif entity.type == MessageEntity.TEXT_MENTION:
            mentioned = mentioned or (entity.user is not None and entity.user.id == me.id)
    replied = message.reply_to_message
    return mentioned or (
        replied is not None
        and replied.from_user is not None
        and replied.from_user.id == me.id
        and replied.forum_topic_created is None  # in a topic, not a real reply
    )


def strip_mention(text: str, username: str) -> str:
    """``"@my_bot what is Docker?"`` -> ``"what is Docker?"``; ``/cmd@my_bot`` is
    kept for the engine. A text that is only the mention stays as it is."""
    pattern = rf"(?<![/\w])@{re.escape(username)}\b[,:]?"
    stripped = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    stripped = re.sub(r"[ \t]{2,}", " ", stripped).strip()
    return stripped or text


class UpdateHandler:
    """The callback PTB calls for every update: normalise, ask the engine, render."""

    def __init__(self, engine: Engine, outbox: Outbox, pacer: ChatPacer, options: TelegramOptions):
        self._engine = engine
        self._outbox = outbox
        self._pacer = pacer
        self._options = options
        self.me: BotIdentity | None = None  # set once getMe has answered

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self.me is None:
            raise RuntimeError("the Telegram adapter handled an update before it started")
        inbound = read_update(update, self.me)
        if inbound is None:
            return
        incoming = inbound.incoming
        if inbound.non_text:
            if incoming.addressed:
                await self._stream(inbound).deliver(_answer(NON_TEXT_REPLY))
            return
        async with aclosing(self._engine.handle(incoming)) as events:
            if incoming.addressed:
                await self._stream(inbound).deliver(events)
            else:
                async for _ in events:  # the engine answers nothing; let it see the message
                    pass

    def _stream(self, inbound: Inbound) -> ReplyStream:
        return ReplyStream(self._outbox, self._pacer, inbound.target, self._options)


async def _answer(text: str) -> AsyncIterator[ReplyEvent]:
    yield ReplyDone(text, ReplyKind.COMMAND)
