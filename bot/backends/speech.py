"""``OpenAISpeech``: text to speech through an OpenAI-compatible ``audio/speech``
endpoint (OpenAI's, or a local server such as openedai-speech or Kokoro-FastAPI), with
the official ``openai`` SDK.

Its own base URL, key and model (``SPEECH__*``), like the transcriber; one client per
process, no retries of its own (a reply read aloud late is worth less than none: the
caller's timeout ends the wait), errors become :class:`~bot.errors.BackendError` here.
"""

from __future__ import annotations

from typing import Literal

import openai
from openai import AsyncOpenAI

from bot.backends.openai import NO_KEY, translate

AudioFormat = Literal["opus", "mp3", "aac", "flac", "wav"]


class OpenAISpeech:
    """Reads text aloud with ``client.audio.speech.create``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str,
        audio_format: AudioFormat = "opus",
        timeout: float = 30.0,
    ) -> None:
        self._base_url = base_url
        self._model = model
        self._format: AudioFormat = audio_format
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, max_retries=0, timeout=timeout
        )

    async def synthesize(self, text: str, voice: str) -> bytes:
        try:
            response = await self._client.audio.speech.create(
                model=self._model, voice=voice, input=text, response_format=self._format
            )
            return await response.aread()
        except openai.OpenAIError as exc:
            raise translate(exc, f"speech ({self._base_url}, {self._model})") from exc

    async def aclose(self) -> None:
        await self._client.close()
