"""Telegram updates -> :class:`~bot.messages.Incoming`, and the one update callback.

What is answered:

* new messages from people in private chats: every text is for the bot;
* in groups and supergroups, a text that mentions the bot (``@name``, or a mention of
  its user), replies to one of its messages, or is a command (``/cmd``, or
  ``/cmd@name`` naming this bot; ``/cmd@other_bot`` is left to that bot). Other group
  messages still go to the engine, unaddressed: it answers nothing to them;
* photos (the largest size within ``MEDIA__MAX_BYTES``), documents (images and text
  files; the engine sniffs what they are), voice notes and audio, each with its caption
  as the text: downloaded through PTB's file API only when the engine takes them;
* an album (several photos or files sent together, one update each) is answered once,
  with all its files and the caption of whichever part has one (:mod:`.albums`);
* stickers, videos and other messages the persona cannot take get a short polite
  answer (in groups only when addressed), and so does a text longer than Telegram
  allows (which Telegram itself never delivers: it is not passed on to the persona).

A button under one of the bot's replies (a callback query whose data is a command,
such as ``/link confirm``) is read as that command typed by the person who pressed it:
the query is answered (ending the button's spinner), the buttons are taken off the
message in a private chat, and the answer comes as a new message.

A persona's reply to someone who turned ``/voice on`` is followed, once its text is
delivered, by the same reply as a voice message (:mod:`.voice`).

Ignored: edited messages, channel posts and every other update kind, messages from
bots (other bots, and anonymous group admins, who speak through one), service
messages (members joining, pins, …), and malformed updates (a field of the wrong
type, an id out of range: only a broken or forged delivery has them). Entities are
read defensively: an offset past the end or inside a surrogate pair is skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace

from telegram import (
    Audio,
    CallbackQuery,
    Chat,
    Document,
    Message,
    MessageEntity,
    PhotoSize,
    Update,
    User,
    Voice,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from adapters.telegram.albums import AlbumCollector
from adapters.telegram.delivery import Outbox, Target
from adapters.telegram.options import TELEGRAM_MAX_CHARS, TelegramOptions
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.render import tg_len
from adapters.telegram.settings import TelegramSettings
from adapters.telegram.streaming import ReplyStream
from adapters.telegram.voice import VoiceSender
from bot.engine import Engine
from bot.errors import MediaRefused
from bot.inbox import Inbox
from bot.messages import (
    Incoming,
    IncomingFile,
    ReplyDone,
    ReplyEvent,
    ReplyKind,
    too_long_refusal,
)
from bot.speech import ReplyWatch

log = logging.getLogger(__name__)

PLATFORM = "telegram"
NON_TEXT_REPLY = (
    "I can read text, photos, voice notes and text files, sorry — stickers and videos "
    "pass me by. Write to me in words and I'll answer."
)
TOO_LONG_REPLY = too_long_refusal(TELEGRAM_MAX_CHARS)
#: A display name is at most a first and a last name of 64 characters each.
MAX_NAME_CHARS = 129
_GROUPS = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})
#: Telegram's ids fit in a signed 64-bit integer.
_ID_RANGE = range(-(2**63), 2**63)


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
    too_long: bool = False

    @property
    def canned_reply(self) -> str | None:
        """The answer that replaces the engine's, for what it is not given."""
        if self.non_text:
            return NON_TEXT_REPLY
        return TOO_LONG_REPLY if self.too_long else None


def is_id(value: object) -> bool:
    """Whether ``value`` can be a Telegram id (an int, not a bool, in 64 bits)."""
    return type(value) is int and value in _ID_RANGE


def read_update(update: Update, me: BotIdentity, max_bytes: int = 20_000_000) -> Inbound | None:
    """Normalise an update, or None when the bot ignores it (see the module doc).
    ``max_bytes`` chooses among a photo's sizes."""
    message = update.message  # new messages only: edits and channel posts live elsewhere
    if message is None:
        return None
    user, chat = message.from_user, message.chat
    if user is None:
        return None  # a channel, or an anonymous group admin: no person speaks
    if not _well_formed(message, user, chat):
        log.warning("telegram update %s is malformed; ignored", _printable_id(update))
        return None
    if user.is_bot:
        return None
    if chat.type == ChatType.PRIVATE:
        private = True
    elif chat.type in _GROUPS:
        private = False
    else:
        return None
    text = message.text
    files = message_files(message, max_bytes)
    if files:
        text = message.caption or ""
    non_text = text is None
    if non_text and message.effective_attachment is None:
        return None  # a service message: someone joined, a pin, a topic created …
    addressed = private or is_addressed(message, me)
    too_long = text is not None and tg_len(text) > TELEGRAM_MAX_CHARS
    if text is not None and not too_long:
        text = strip_mention(text, me.username)
    thread_id = message.message_thread_id if message.is_topic_message is True else None
    target = Target(
        chat_id=chat.id,
        private=private,
        thread_id=thread_id if is_id(thread_id) else None,
        reply_to=None if private else message.message_id,
    )
    incoming = Incoming(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=_display_name(user),
        chat_id=str(chat.id),
        private=private,
        text="" if too_long else (text or ""),
        addressed=addressed,
        files=files,
    )
    return Inbound(incoming, target, non_text, too_long)


def message_files(message: Message, max_bytes: int) -> tuple[IncomingFile, ...]:
    """The files of a message the engine may take: a photo (its largest size within
    ``max_bytes``, else its smallest, to be refused by size), a document, a voice note or
    an audio file. Nothing is downloaded here."""
    photo = message.photo
    if isinstance(photo, Sequence) and photo:
        sizes = [size for size in photo if isinstance(size, PhotoSize)]
        fitting = [size for size in sizes if (size.file_size or 0) <= max_bytes]
        chosen = (fitting or sizes)[-1:] if sizes else []
        return tuple(_file(size, f"photo-{size.file_unique_id}.jpg") for size in chosen)
    item = message.document or message.voice or message.audio
    if isinstance(item, Document | Audio):
        name = item.file_name if isinstance(item.file_name, str) else ""
        return (_file(item, name or f"file-{item.file_unique_id}", item.mime_type),)
    if isinstance(item, Voice):
        return (_file(item, f"voice-{item.file_unique_id}.ogg", item.mime_type, voice=True),)
    return ()


def _file(
    item: PhotoSize | Document | Audio | Voice,
    name: str,
    declared: str | None = None,
    *,
    voice: bool = False,
) -> IncomingFile:
    async def fetch(max_bytes: int) -> bytes:
        found = await item.get_file()
        if (found.file_size or 0) > max_bytes:
            raise MediaRefused.too_large(name, max_bytes)
        return bytes(await found.download_as_bytearray())

    size = item.file_size if is_id(item.file_size) else 0
    return IncomingFile(name, fetch, declared or "", size or 0, voice)


def merge_parts(parts: Sequence[Inbound]) -> Inbound:
    """An album's parts as one message: every part's files, the caption (and where to
    answer) of the part that has one, addressed when any part is."""
    captioned = next((p for p in parts if p.incoming.text or p.too_long), parts[0])
    files = tuple(file for part in parts for file in part.incoming.files)
    incoming = replace(
        captioned.incoming,
        files=files,
        addressed=any(part.incoming.addressed for part in parts),
    )
    non_text = not files and all(part.non_text for part in parts)
    return Inbound(incoming, captioned.target, non_text, captioned.too_long)


def read_callback(update: Update) -> Inbound | None:
    """A pressed button of one of the bot's messages, as the command it carries, or
    None when it is not one of ours (or too malformed to answer)."""
    query = update.callback_query
    if query is None:
        return None
    user, data, message = query.from_user, query.data, query.message
    if not isinstance(user, User) or not is_id(user.id) or user.is_bot:
        return None
    if not isinstance(data, str) or not data.startswith("/") or message is None:
        return None
    chat = message.chat
    if not isinstance(chat, Chat) or not is_id(chat.id) or not is_id(message.message_id):
        return None
    if chat.type == ChatType.PRIVATE:
        private = True
    elif chat.type in _GROUPS:
        private = False
    else:
        return None
    target = Target(chat_id=chat.id, private=private)
    incoming = Incoming(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=_display_name(user),
        chat_id=str(chat.id),
        private=private,
        text=data,
        addressed=True,
    )
    return Inbound(incoming, target)


def _well_formed(message: Message, sender: object, where: object) -> bool:
    """Whether the fields the bot relies on have the types Telegram gives them: PTB
    builds its objects from whatever JSON it is given, without checking."""
    return (
        isinstance(sender, User)
        and is_id(sender.id)
        and isinstance(where, Chat)
        and is_id(where.id)
        and isinstance(where.type, str)
        and is_id(message.message_id)
        and isinstance(message.text, str | None)
        and isinstance(message.caption, str | None)
    )


def _printable_id(update: Update) -> str:
    """The update's id for a log line (a forged one may be any JSON value)."""
    return str(update.update_id) if is_id(update.update_id) else "(not an id)"


def _display_name(user: User) -> str:
    first = user.first_name if isinstance(user.first_name, str) else ""
    last = user.last_name if isinstance(user.last_name, str) else ""
    name = f"{first} {last}".strip()[:MAX_NAME_CHARS].strip()
    return name or f"user {user.id}"


def is_addressed(message: Message, me: BotIdentity) -> bool:
    """Whether a group message is meant for the bot (see the module doc)."""
    if message.text is not None:
        entities = entity_texts(message.text, message.entities)
    else:
        entities = entity_texts(message.caption, message.caption_entities)
    name = me.username.lower()
    mentioned = False
    for entity, fragment in entities:
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


def entity_texts(text: object, entities: object) -> Iterator[tuple[MessageEntity, str]]:
    """Each entity with the text it marks. Offsets and lengths count UTF-16 units;
    an entity that is not inside the text is skipped, and half of a surrogate pair
    at either end reads as U+FFFD (PTB's own parser raises on both)."""
    if not isinstance(text, str) or not isinstance(entities, Sequence):
        return
    units = text.encode("utf-16-le", "surrogatepass")
    size = len(units) // 2
    for entity in entities:
        if not isinstance(entity, MessageEntity):
            continue
        start, length = entity.offset, entity.length
        if not (is_id(start) and is_id(length)) or start < 0 or length < 0:
            continue
        if start + length > size:
            continue
        yield entity, units[2 * start : 2 * (start + length)].decode("utf-16-le", "replace")


def strip_mention(text: str, username: str) -> str:
    """``"@my_bot what is Docker?"`` -> ``"what is Docker?"``; ``/cmd@my_bot`` is
    kept for the engine. A text that is only the mention stays as it is."""
    pattern = rf"(?<![/\w])@{re.escape(username)}\b[,:]?"
    stripped = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    stripped = re.sub(r"[ \t]{2,}", " ", stripped).strip()
    return stripped or text


class UpdateHandler:
    """The callback PTB calls for every update: normalise, ask the engine, render."""

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        pacer: ChatPacer,
        settings: TelegramSettings,
        options: TelegramOptions,
        *,
        albums: AlbumCollector | None = None,
        voice: VoiceSender | None = None,
    ):
        self._engine = engine
        self._outbox = outbox
        self._pacer = pacer
        self._settings = settings
        self._options = options
        self._albums = albums
        self._voice = voice
        self.me: BotIdentity | None = None  # set once getMe has answered
        #: Webhook mode: where acknowledged updates wait until answered.
        self.inbox: Inbox | None = None

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self.me is None:
            raise RuntimeError("the Telegram adapter handled an update before it started")
        inbox = self.inbox
        event_id = str(update.update_id) if is_id(update.update_id) else None
        sent_at = inbox.received_at(event_id) if inbox and event_id else None
        try:
            await self._handle(update, self.me, sent_at)
        finally:
            if inbox is not None and event_id is not None and sent_at is not None:
                await inbox.finish(event_id)

    async def _handle(self, update: Update, me: BotIdentity, sent_at: float | None) -> None:
        if update.callback_query is not None:
            await self._pressed(update, update.callback_query)
            return
        inbound = await self._read(update, me)
        if inbound is None:
            return
        incoming = replace(inbound.incoming, sent_at=sent_at)
        canned = inbound.canned_reply
        if canned is not None:
            if incoming.addressed:
                await self._stream(inbound).deliver(_answer(canned))
            return
        async with aclosing(self._engine.handle(incoming)) as events:
            if incoming.addressed:
                await self._deliver(inbound, incoming, events)
            else:
                async for _ in events:  # the engine answers nothing; let it see the message
                    pass

    async def _pressed(self, update: Update, query: CallbackQuery) -> None:
        inbound = read_callback(update)
        try:
            await query.answer()  # ends the spinner on the button, whatever follows
        except TelegramError as exc:
            log.debug("could not answer a callback query: %s", type(exc).__name__)
        if inbound is None:
            return
        message = query.message
        if inbound.target.private and message is not None:
            # pressed once is enough: the answer follows as a new message
            await self._outbox.drop_buttons(inbound.target, message.message_id)
        async with aclosing(self._engine.handle(inbound.incoming)) as events:
            await self._deliver(inbound, inbound.incoming, events)

    async def _read(self, update: Update, me: BotIdentity) -> Inbound | None:
        """The message of an update, or of the whole album it starts (None for a part
        answered with its album, and for what the bot ignores)."""
        max_bytes = self._engine.media.settings.max_bytes
        parts = await self._albums.gather(update) if self._albums is not None else [update]
        inbounds = [i for i in (read_update(part, me, max_bytes) for part in parts) if i]
        if len(inbounds) > 1:
            return merge_parts(inbounds)
        return inbounds[0] if inbounds else None

    async def _deliver(
        self, inbound: Inbound, incoming: Incoming, events: AsyncIterator[ReplyEvent]
    ) -> None:
        """Render the reply; then, for someone who asked for voice replies, read it aloud."""
        watch = ReplyWatch()
        async with aclosing(watch.watch(events)) as watched:
            await self._stream(inbound).deliver(watched)
        if self._voice is not None:
            await self._voice.follow(incoming, inbound.target, watch.done)

    def _stream(self, inbound: Inbound) -> ReplyStream:
        return ReplyStream(self._outbox, self._pacer, inbound.target, self._settings, self._options)


async def _answer(text: str) -> AsyncIterator[ReplyEvent]:
    yield ReplyDone(text, ReplyKind.COMMAND)
