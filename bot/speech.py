"""Replies read aloud: :class:`VoiceReplies`.

An owner turns it on with ``/voice on`` (a preference, so it follows them across linked
platforms, is exported and goes with ``/forget``). Each front end delivers a chat
reply's text first and then asks :meth:`VoiceReplies.speak` for the same reply as
audio, made by a :class:`Synthesizer` (``SPEECH__*``, an OpenAI-compatible
``audio/speech`` endpoint) in the persona's voice (its card's ``voice``, else
``SPEECH__VOICE``). The text read is the reply without markup, cut at
``SPEECH__MAX_CHARS``; the request is bounded by ``SPEECH__TIMEOUT``.

Nothing here can lose a reply: the text is out before any audio is asked for, and a
failure or a timeout becomes a :class:`SpeechFailure` with one short line for the user
(the log line never carries the reply's text).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from bot.commands import PERSONA_PREFERENCE, VOICE_PREFERENCE
from bot.config import SpeechSettings
from bot.errors import BackendError, StoreError
from bot.messages import Incoming, OwnerId, ReplyDone, ReplyEvent, ReplyKind, account_owner
from bot.personas import Persona, PersonaLibrary
from bot.store.base import ConversationStore

log = logging.getLogger(__name__)

#: What the user sees when the audio of a reply could not be made.
SPEECH_FAILED = "🔇 (I couldn't read this reply aloud just now: it stays text only.)"
#: File names and media types of the formats a speech server is asked for.
_AUDIO = {
    "opus": ("reply.ogg", "audio/ogg"),
    "mp3": ("reply.mp3", "audio/mpeg"),
    "aac": ("reply.aac", "audio/aac"),
    "flac": ("reply.flac", "audio/flac"),
    "wav": ("reply.wav", "audio/wav"),
}
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
_MARKUP = re.compile(r"[*_`~#>|]+")
_SPACES = re.compile(r"\s+")


class Synthesizer(Protocol):
    """Text to speech (see :mod:`bot.backends.speech`)."""

    async def synthesize(self, text: str, voice: str) -> bytes:
        """``text`` spoken in ``voice``; raises BackendError when the service fails."""


@dataclass(frozen=True, slots=True)
class SpokenReply:
    """A reply as audio, ready to send."""

    data: bytes
    media_type: str
    filename: str
    #: The text that was read (the reply without markup, perhaps cut).
    text: str


@dataclass(frozen=True, slots=True)
class SpeechFailure:
    """The audio could not be made; ``note`` is the line for the user."""

    note: str = SPEECH_FAILED


class ReplyWatch:
    """Passes a reply's events on and keeps its :class:`ReplyDone`, so that a front end
    can read the reply aloud once its renderer has delivered the text."""

    def __init__(self) -> None:
        self.done: ReplyDone | None = None

    async def watch(self, events: AsyncIterator[ReplyEvent]) -> AsyncGenerator[ReplyEvent, None]:
        async for event in events:
            if isinstance(event, ReplyDone):
                self.done = event
            yield event


def speakable(text: str, max_chars: int) -> str:
    """The words of a reply to read aloud: code blocks and markup characters left out,
    spaces collapsed, cut at the last word before ``max_chars`` (with an ellipsis)."""
    text = _SPACES.sub(" ", _MARKUP.sub("", _CODE_BLOCK.sub(" ", text))).strip()
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def is_on(preferences: dict[str, str]) -> bool:
    return preferences.get(VOICE_PREFERENCE) == "on"


class VoiceReplies:
    """Whether a reply is also read aloud, and the audio when it is."""

    def __init__(
        self,
        store: ConversationStore,
        personas: PersonaLibrary,
        synthesizer: Synthesizer | None,
        settings: SpeechSettings | None = None,
    ) -> None:
        self._store = store
        self._personas = personas
        self._synthesizer = synthesizer
        self.settings = settings or SpeechSettings()

    @property
    def enabled(self) -> bool:
        """Whether this process can read replies aloud at all (``SPEECH__*`` set)."""
        return self._synthesizer is not None

    def wants(self, done: ReplyDone | None) -> bool:
        """Whether ``done`` is a reply that may be read aloud (a persona's chat reply,
        where speech is set up); whether its speaker wants it is :meth:`voice_of`."""
        return (
            self.enabled
            and done is not None
            and done.kind is ReplyKind.CHAT
            and bool(done.text.strip())
        )

    async def voice_of(self, incoming: Incoming) -> Persona | None:
        """The persona whose voice reads replies to this speaker, or None when they did
        not turn voice replies on (or none can be made here). One store read."""
        if self._synthesizer is None:
            return None
        if incoming.account_id is not None:
            return await self.voice_of_owner(account_owner(incoming.account_id))
        try:
            _, prefs = await self._store.resolve_identity(incoming.identity)
        except StoreError as exc:
            log.warning("could not read whether replies are read aloud: %s", exc)
            return None
        return self._voice(prefs)

    async def voice_of_owner(self, owner: OwnerId) -> Persona | None:
        """As :meth:`voice_of`, for an owner known already (the web's account)."""
        if self._synthesizer is None:
            return None
        try:
            prefs = await self._store.get_preferences(owner)
        except StoreError as exc:
            log.warning("could not read whether replies are read aloud: %s", exc)
            return None
        return self._voice(prefs)

    def _voice(self, prefs: dict[str, str]) -> Persona | None:
        if not is_on(prefs):
            return None
        chosen = prefs.get(PERSONA_PREFERENCE)
        return (self._personas.find(chosen) if chosen else None) or self._personas.default

    async def speak(
        self, incoming: Incoming, done: ReplyDone
    ) -> SpokenReply | SpeechFailure | None:
        """``done`` read aloud when it is a persona's reply and its speaker turned voice
        replies on; None when no audio is wanted. Call it after the text is delivered."""
        if not self.wants(done):
            return None
        persona = await self.voice_of(incoming)
        if persona is None:
            return None
        return await self.read_aloud(done.text, persona, incoming.platform)

    async def read_aloud(
        self, text: str, persona: Persona, platform: str = ""
    ) -> SpokenReply | SpeechFailure | None:
        """``text`` in ``persona``'s voice, within ``SPEECH__TIMEOUT`` (None when it has
        no words to read)."""
        synthesizer = self._synthesizer
        if synthesizer is None:
            return SpeechFailure()
        settings = self.settings
        words = speakable(text, settings.max_chars)
        if not words:
            return None
        voice = persona.voice or settings.voice
        try:
            async with asyncio.timeout(settings.timeout):
                data = await synthesizer.synthesize(words, voice)
        except TimeoutError:
            log.warning(
                "a %s reply was not read aloud: speech took longer than %g s",
                platform,
                settings.timeout,
            )
            return SpeechFailure()
        except BackendError as exc:  # its message names the server, never the text
            log.warning("a %s reply was not read aloud: %s", platform, exc)
            return SpeechFailure()
        if not data:
            log.warning("a %s reply was not read aloud: the speech server sent no audio", platform)
            return SpeechFailure()
        filename, media_type = _AUDIO[settings.format]
        return SpokenReply(data, media_type, filename, words)
