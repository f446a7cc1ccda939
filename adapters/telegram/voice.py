"""Replies read aloud on Telegram: after a reply's text is delivered, the same reply as
a voice message (``sendVoice``: Ogg Opus, or MP3) when its speaker turned ``/voice on``.

The voice message is paced like any write to the chat and tried once: a voice message
is a courtesy next to a text that has already arrived, so a refusal (a 429, a chat that
blocked the bot, a format Telegram will not play) is logged and the text stands alone.
When the audio could not be made, a one-line note says so instead.
"""

from __future__ import annotations

import logging

from telegram import Bot, InputFile, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import TelegramError

from adapters.telegram.delivery import Target
from adapters.telegram.pacing import ChatPacer
from adapters.telegram.settings import TelegramSettings
from bot.messages import Incoming, ReplyDone
from bot.speech import SpeechFailure, VoiceReplies

log = logging.getLogger(__name__)

#: What sendVoice plays as a voice message; other formats go as an audio file.
_VOICE_TYPES = frozenset({"audio/ogg", "audio/mpeg"})


class VoiceSender:
    """Sends a reply's voice message, after its text."""

    def __init__(
        self, bot: Bot, speech: VoiceReplies, pacer: ChatPacer, settings: TelegramSettings
    ) -> None:
        self._bot = bot
        self._speech = speech
        self._pacer = pacer
        self._settings = settings

    async def follow(self, incoming: Incoming, target: Target, done: ReplyDone | None) -> None:
        """Read ``done`` aloud into the chat when its speaker asked for voice replies."""
        speech = self._speech
        if done is None or not speech.wants(done):
            return
        persona = await speech.voice_of(incoming)
        if persona is None:
            return
        await self._recording(target)
        spoken = await speech.read_aloud(done.text, persona, incoming.platform)
        if spoken is None:
            return
        interval = self._settings.edit_interval(target.private)
        try:
            async with self._pacer.turn(target.chat_id, interval):
                if isinstance(spoken, SpeechFailure):
                    await self._bot.send_message(
                        target.chat_id, spoken.note, message_thread_id=target.thread_id
                    )
                    return
                audio = InputFile(spoken.data, filename=spoken.filename)
                reply = None
                if target.reply_to is not None:
                    reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True)
                if spoken.media_type in _VOICE_TYPES:
                    await self._bot.send_voice(
                        target.chat_id,
                        audio,
                        message_thread_id=target.thread_id,
                        reply_parameters=reply,
                    )
                else:
                    await self._bot.send_audio(
                        target.chat_id,
                        audio,
                        message_thread_id=target.thread_id,
                        reply_parameters=reply,
                    )
        except TelegramError as exc:
            log.warning("a voice reply could not be sent: %s", type(exc).__name__)

    async def _recording(self, target: Target) -> None:
        """Show "recording a voice message" while the audio is made (best effort)."""
        try:
            await self._bot.send_chat_action(
                target.chat_id, ChatAction.RECORD_VOICE, message_thread_id=target.thread_id
            )
        except TelegramError as exc:
            log.debug("recording action failed: %s", type(exc).__name__)
