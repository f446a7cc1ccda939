"""Replies read aloud on Discord: after a reply's text is shown, the same reply as an
audio file (``reply.ogg``, Ogg Opus) when its speaker turned ``/voice on``.

It is posted as an ordinary audio attachment, which every Discord client plays inline:
a real "voice message" needs a waveform and duration computed from the decoded audio,
and such a message cannot carry anything else. The upload is tried once (a voice reply
is a courtesy next to a text already shown); when the audio could not be made, a
one-line note says so instead.
"""

from __future__ import annotations

import io
import logging
from typing import Protocol

import discord

from adapters.discord.errors import DiscordAPIError
from adapters.discord.rest import InteractionWebhooks
from bot.messages import Incoming, ReplyDone
from bot.speech import SpeechFailure, SpokenReply, VoiceReplies

log = logging.getLogger(__name__)


class VoiceOut(Protocol):
    """Where a reply's audio goes: after the reply, in the same place."""

    async def audio(self, spoken: SpokenReply) -> None: ...

    async def note(self, text: str) -> None: ...


def _file(spoken: SpokenReply) -> discord.File:
    return discord.File(io.BytesIO(spoken.data), filename=spoken.filename)


class ChannelVoice:
    """The reply to a message: the audio follows it in the channel."""

    def __init__(self, channel: discord.abc.Messageable):
        self._channel = channel

    async def audio(self, spoken: SpokenReply) -> None:
        await self._channel.send(file=_file(spoken))

    async def note(self, text: str) -> None:
        await self._channel.send(text)


class InteractionVoice:
    """The reply to a slash command (gateway): the audio is a follow-up."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool):
        self._interaction = interaction
        self._ephemeral = ephemeral

    async def audio(self, spoken: SpokenReply) -> None:
        await self._interaction.followup.send(file=_file(spoken), ephemeral=self._ephemeral)

    async def note(self, text: str) -> None:
        await self._interaction.followup.send(text, ephemeral=self._ephemeral)


class WebhookVoice:
    """The reply to an HTTP interaction: the audio is a follow-up through its webhook."""

    def __init__(self, webhooks: InteractionWebhooks, app_id: str, token: str, *, ephemeral: bool):
        self._webhooks = webhooks
        self._app_id = app_id
        self._token = token
        self._ephemeral = ephemeral

    async def audio(self, spoken: SpokenReply) -> None:
        await self._webhooks.send_file(
            self._app_id,
            self._token,
            spoken.filename,
            spoken.data,
            spoken.media_type,
            ephemeral=self._ephemeral,
        )

    async def note(self, text: str) -> None:
        await self._webhooks.send_followup(
            self._app_id, self._token, text, ephemeral=self._ephemeral
        )


async def follow_with_voice(
    speech: VoiceReplies, incoming: Incoming, done: ReplyDone | None, out: VoiceOut
) -> None:
    """Read ``done`` aloud into ``out`` when its speaker asked for voice replies."""
    if not speech.wants(done):
        return
    assert done is not None
    spoken = await speech.speak(incoming, done)
    if spoken is None:
        return
    try:
        if isinstance(spoken, SpeechFailure):
            await out.note(spoken.note)
        else:
            await out.audio(spoken)
    except discord.HTTPException as exc:
        log.warning("discord: a voice reply could not be sent (HTTP %s)", exc.status)
    except DiscordAPIError as exc:
        log.warning("discord: a voice reply could not be sent (HTTP %s)", exc.status)
