"""Replies read aloud, in the core: what is read (:func:`bot.speech.speakable`), whose
voice, ``/voice`` as a preference of the owner (it follows linked platforms, is
exported and forgotten), and failures that never carry the reply's text into the log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest

from auth.export import export_account
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import SpeechSettings
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.errors import BackendUnavailable
from bot.messages import Identity, Incoming, ReplyDone, ReplyKind, account_owner, guest_owner
from bot.personas import PersonaLibrary
from bot.speech import SpeechFailure, SpokenReply, VoiceReplies, speakable
from bot.store.memory import MemoryStore
from tests.support.fakes import WindowEcho, make_persona


class Synthesizer:
    """Our Synthesizer interface, in memory: records what it is asked; fails or
    stalls when told to."""

    def __init__(self, *, fail: bool = False, stall: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.stall = stall

    async def synthesize(self, text: str, voice: str) -> bytes:
        self.calls.append((text, voice))
        if self.fail:
            raise BackendUnavailable("speech (http://127.0.0.1:9/v1, tts-1): HTTP 500")
        if self.stall:
            await asyncio.sleep(30)
        return b"OggS" + text.encode()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    async with MemoryStore() as memory:
        yield memory


def engine_with(store: MemoryStore, synthesizer: Synthesizer | None, **settings: object) -> Engine:
    voiced = dataclasses.replace(make_persona("ada", backend="echo"), voice="onyx")
    personas = PersonaLibrary([voiced, make_persona("morrow", "Captain Morrow", backend="echo")])
    guard = ReplyGuard({"echo": WindowEcho()}, GuardPolicy(retries=0))
    tuned = SpeechSettings.model_validate({"base_url": "http://127.0.0.1:9/v1", **settings})
    speech = VoiceReplies(store, personas, synthesizer, tuned)
    return build_engine(store, personas, guard, speech=speech)


def said(platform: str, user: str, text: str, account: str | None = None) -> Incoming:
    return Incoming(platform, user, user, user, True, text, account_id=account)


async def answer(engine: Engine, incoming: Incoming) -> ReplyDone:
    done = None
    async for event in engine.handle(incoming):
        if isinstance(event, ReplyDone):
            done = event
    assert done is not None
    return done


def test_what_is_read_aloud() -> None:
    text = "*waves* Hello __there__!\n\n```python\nprint('no')\n```\nBye `now`."
    assert speakable(text, 100) == "waves Hello there! Bye now."
    long = "word " * 100
    cut = speakable(long, 23)
    assert cut == "word word word word…" and len(cut) <= 23


async def test_voice_on_follows_the_owner_to_linked_platforms(store: MemoryStore) -> None:
    engine = engine_with(store, Synthesizer())
    account = await store.create_account("ada", "hash", 1.0)
    web = said("web", account.id, "/voice on", account.id)
    assert (await answer(engine, web)).text.startswith("Voice replies: on.")
    await store.link_identity(Identity("telegram", "77"), "Ada", account.id, 2.0)
    persona = await engine.speech.voice_of(said("telegram", "77", "hi"))
    assert persona is not None and persona.voice == "onyx"
    # a guest elsewhere did not turn it on
    assert await engine.speech.voice_of(said("telegram", "78", "hi")) is None
    # exported with the account, and gone with /forget
    exported = await export_account(store, account, 3.0)
    assert exported["preferences"]["voice"] == "on"
    await store.forget_owner(account_owner(account.id))
    assert "voice" not in await store.get_preferences(account_owner(account.id))


async def test_the_persona_voice_or_the_default_reads_chat_replies_only(
    store: MemoryStore,
) -> None:
    synthesizer = Synthesizer()
    engine = engine_with(store, synthesizer, voice="alloy")
    await answer(engine, said("telegram", "1", "/voice on"))
    incoming = said("telegram", "1", "hi")
    spoken = await engine.speech.speak(incoming, await answer(engine, incoming))
    assert isinstance(spoken, SpokenReply) and spoken.media_type == "audio/ogg"
    await answer(engine, said("telegram", "1", "/persona morrow"))
    done = await answer(engine, incoming)
    assert isinstance(await engine.speech.speak(incoming, done), SpokenReply)
    command = await answer(engine, said("telegram", "1", "/whoami"))
    assert command.kind is ReplyKind.COMMAND
    assert await engine.speech.speak(incoming, command) is None
    assert [voice for _, voice in synthesizer.calls] == ["onyx", "alloy"]


async def test_a_long_reply_is_cut_before_it_is_read(store: MemoryStore) -> None:
    synthesizer = Synthesizer()
    engine = engine_with(store, synthesizer, max_chars=40)
    await answer(engine, said("telegram", "1", "/voice on"))
    done = ReplyDone("one two three four five six seven eight nine ten " * 5, ReplyKind.CHAT)
    spoken = await engine.speech.speak(said("telegram", "1", "x"), done)
    assert isinstance(spoken, SpokenReply)
    [(text, _)] = synthesizer.calls
    assert len(text) <= 40 and text.endswith("…") and spoken.text == text


@pytest.mark.parametrize("failure", ["fail", "stall"])
async def test_a_failure_is_a_short_note_and_logs_no_text(
    store: MemoryStore, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    synthesizer = Synthesizer(fail=failure == "fail", stall=failure == "stall")
    engine = engine_with(store, synthesizer, timeout=0.2)
    await answer(engine, said("telegram", "1", "/voice on"))
    done = ReplyDone("my secret plans for Tuesday", ReplyKind.CHAT)
    with caplog.at_level(logging.DEBUG):
        spoken = await engine.speech.speak(said("telegram", "1", "x"), done)
    assert isinstance(spoken, SpeechFailure)
    assert "was not read aloud" in caplog.text and "secret" not in caplog.text


async def test_voice_without_a_speech_service(store: MemoryStore) -> None:
    engine = engine_with(store, None)
    assert "not set up here" in (await answer(engine, said("telegram", "1", "/voice on"))).text
    assert "voice" not in await store.get_preferences(guest_owner(Identity("telegram", "1")))
    shown = (await answer(engine, said("telegram", "1", "/voice"))).text
    assert shown.startswith("Voice replies: off.") and "not set up here" in shown
    assert (
        "/voice on or /voice off" in (await answer(engine, said("telegram", "1", "/voice x"))).text
    )
