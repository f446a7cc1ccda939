"""``OpenAITranscriber``: voice notes to text through an OpenAI-compatible
``audio/transcriptions`` endpoint (OpenAI's Whisper, or a local server such as
faster-whisper-server or LocalAI), with the official ``openai`` SDK.

Its own base URL, key and model (``TRANSCRIPTION__*``), so a local speech server can
serve voice notes while another server writes replies. Like the chat backend it makes
one client per process and leaves retrying to its caller (``max_retries=0``); errors
become :class:`~bot.errors.BackendError` at this edge.
"""

from __future__ import annotations

import openai
from openai import AsyncOpenAI

from bot.backends.openai import NO_KEY, translate


class OpenAITranscriber:
    """Transcribes audio with ``client.audio.transcriptions.create``."""

    def __init__(
        self, *, base_url: str, api_key: str | None = None, model: str, timeout: float = 60.0
    ) -> None:
        self._base_url = base_url
        self._model = model
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, max_retries=0, timeout=timeout
        )

    async def transcribe(self, filename: str, data: bytes, media_type: str) -> str:
        try:
            result = await self._client.audio.transcriptions.create(
                model=self._model, file=(filename, data, media_type)
            )
        except openai.OpenAIError as exc:
            raise translate(exc, f"transcription ({self._base_url}, {self._model})") from exc
        return result.text

    async def aclose(self) -> None:
        await self._client.close()
