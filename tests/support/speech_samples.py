"""What the voice-reply tests share: an engine's replies read aloud by the real
:class:`~bot.backends.speech.OpenAISpeech` against the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.backends.speech import OpenAISpeech
from bot.config import SpeechSettings
from bot.engine import Engine
from bot.speech import VoiceReplies
from tests.support.openai_server import SPOKEN, FakeOpenAI


@asynccontextmanager
async def speaking(engine: Engine, url: str, **settings: Any) -> AsyncIterator[OpenAISpeech]:
    """``engine`` with its replies read aloud by the speech server at ``url``."""
    tuned = SpeechSettings.model_validate({"base_url": url, **settings})
    synthesizer = OpenAISpeech(
        base_url=url, model=tuned.model, audio_format=tuned.format, timeout=tuned.timeout
    )
    engine.speech = VoiceReplies(engine.store, engine.personas, synthesizer, tuned)
    try:
        yield synthesizer
    finally:
        await synthesizer.aclose()


def spoken(text: str) -> bytes:
    """The audio the fake speech server makes of ``text``."""
    return SPOKEN + text.encode()


__all__ = ["FakeOpenAI", "speaking", "spoken"]
