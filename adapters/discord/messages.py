"""Messages from the gateway: DMs are always chat; in guild channels and threads the
bot answers when it is mentioned (its user or its managed role) or replied to.

Works without the privileged Message Content intent: Discord still delivers the text
of DMs and of messages that mention the bot, which are exactly the ones answered. A
message's scope is its channel (a thread is its own channel), so each member keeps a
separate history per channel.

A text longer than Discord allows is answered with a short refusal and not passed on;
a message whose content is not text at all (only a forged event has one) is ignored.
Attachments (images, text files, voice messages) go to the engine as files, fetched
from their URL only when the engine takes them; a message with only files is a message.
"""

from __future__ import annotations

import logging
import re

import discord

from adapters.discord.commands import MAX_INPUT_CHARS, PLATFORM, TOO_LONG_REPLY, display_name
from adapters.discord.files import attachment_files
from adapters.discord.settings import DiscordSettings
from adapters.discord.streaming import deliver
from adapters.discord.targets import ChannelSlots, typing_once
from adapters.discord.tasks import TaskTracker
from adapters.discord.voice import ChannelVoice, follow_with_voice
from bot.engine import Engine
from bot.messages import Incoming

log = logging.getLogger(__name__)

#: What a bare mention (no text) means: a hello.
BARE_MENTION = "/start"
_CHAT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def is_direct(message: discord.Message) -> bool:
    """A DM with the bot. (A guild message whose guild is not cached has
    ``guild=None`` too, but a ``PartialMessageable`` channel, not a DMChannel.)"""
    return isinstance(message.channel, discord.DMChannel)


def _own_role_ids(message: discord.Message, me: discord.abc.User) -> set[int]:
    return {
        role.id
        for role in message.role_mentions
        if role.tags is not None and role.tags.bot_id == me.id
    }


def addresses_bot(message: discord.Message, me: discord.abc.User) -> bool:
    """Whether ``message`` is meant for the bot: a DM, a mention of the bot (not
    @everyone), or a reply to one of the bot's messages."""
    if is_direct(message):
        return True
    if me.id in message.raw_mentions or any(user.id == me.id for user in message.mentions):
        return True
    if _own_role_ids(message, me):
        return True
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    return isinstance(replied, discord.Message) and replied.author.id == me.id


def readable_text(message: discord.Message, me: discord.abc.User) -> str:
    """The text without the mention of the bot, other users' mentions as ``@name``."""
    names = {user.id: user.display_name for user in message.mentions}
    own_roles = _own_role_ids(message, me)

    def user(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id == me.id:
            return ""
        return f"@{names[user_id]}" if user_id in names else match.group(0)

    def role(match: re.Match[str]) -> str:
        return "" if int(match.group(1)) in own_roles else match.group(0)

    text = _ROLE_MENTION.sub(role, _USER_MENTION.sub(user, message.content))
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def incoming_from_message(message: discord.Message, me: discord.abc.User) -> Incoming | None:
    """The engine's view of ``message``; None for what is never answered (bots,
    including this one, webhooks, system messages, and malformed messages)."""
    if message.author.bot or message.author.id == me.id or message.type not in _CHAT_TYPES:
        return None
    content: object = message.content
    if not isinstance(content, str):
        log.warning("discord: a message without text content was ignored")
        return None
    addressed = addresses_bot(message, me)
    files = attachment_files(message.attachments) if addressed else ()
    text = (readable_text(message, me) or ("" if files else BARE_MENTION)) if addressed else ""
    return Incoming(
        platform=PLATFORM,
        user_id=str(message.author.id),
        display_name=display_name(message.author),
        chat_id=str(message.channel.id),
        private=is_direct(message),
        text=text,
        addressed=addressed,
        files=files,
    )


class MessageHandler:
    """Answers gateway messages through the engine, streaming the reply."""

    def __init__(
        self, client: discord.Client, engine: Engine, options: DiscordSettings, tasks: TaskTracker
    ):
        self._client = client
        self._engine = engine
        self._options = options
        self._tasks = tasks

    async def on_message(self, message: discord.Message) -> None:
        me = self._client.user
        if me is None or self._tasks.closed:
            return
        incoming = incoming_from_message(message, me)
        if incoming is None or not incoming.addressed:
            return
        reply_to = None if incoming.private else message
        slots = ChannelSlots(message.channel, reply_to)
        try:
            if len(message.content) > MAX_INPUT_CHARS:
                async with self._tasks.track():
                    await slots.show(0, TOO_LONG_REPLY)
                return
            async with self._tasks.track():
                # "typing…" only while the first words keep the user waiting: a reply
                # shown within the first-message delay needs none (nor its request)
                typing = typing_once(message.channel)
                done = await deliver(self._engine, incoming, slots, self._options, typing=typing)
                voice = ChannelVoice(message.channel)
                await follow_with_voice(self._engine.speech, incoming, done, voice)
        except Exception:
            # The one place a gateway message's failure ends: logged, never raised into
            # discord.py's event loop (which would only log it less helpfully).
            log.exception("discord: could not answer a message in channel %s", incoming.chat_id)
