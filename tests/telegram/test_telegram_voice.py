"""Replies read aloud on Telegram (``/voice on``): sendVoice after the final text, from
the real OpenAISpeech against the fake speech endpoint; a speech server that is down or
slow leaves the text reply whole, with a short note."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.messages import Identity, guest_owner
from bot.speech import SPEECH_FAILED
from bot.store.memory import MemoryStore
from tests.support.fakes import TextBackend
from tests.support.speech_samples import FakeOpenAI, speaking, spoken
from tests.support.telegram_harness import ALICE, Chat, build_engine, polling
from tests.support.telegram_server import FakeBotApi

REPLY = "Hello *there*, Alice."
SHOWN = "Hello there, Alice."  # as Telegram shows it (the emphasis is markup)
ALICE_OWNER = guest_owner(Identity("telegram", str(ALICE.id)))


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_voice_on_sends_the_reply_as_a_voice_message_after_its_text(
    store: MemoryStore, fake: FakeBotApi, oai: FakeOpenAI
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url, voice="nova"), polling(engine, fake):
        chat = Chat(fake, ALICE)
        assert (await chat.say("/voice")).startswith("Voice replies: off.")
        assert (await chat.say("/voice on")).startswith("Voice replies: on.")
        assert await chat.say("hi") == SHOWN
        await fake.wait_for(lambda: bool(fake.voices))
    [voice] = fake.voices
    assert voice["method"] == "sendVoice"
    assert voice["chat_id"] == ALICE.id
    assert voice["data"] == spoken(SHOWN)  # markup is not read aloud
    [request] = oai.speeches
    assert request["voice"] == "nova"
    assert request["response_format"] == "opus"
    # the voice message comes after the reply's text, in the chat
    shown = fake.shown(ALICE.id)
    assert [s.text for s in shown[-2:]] == [SHOWN, "[voice]"]
    # only the reply is read aloud: no command answer was
    assert len(oai.speeches) == 1


async def test_voice_off_by_default_and_after_voice_off(
    store: MemoryStore, fake: FakeBotApi, oai: FakeOpenAI
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url), polling(engine, fake):
        chat = Chat(fake, ALICE)
        await chat.say("hi")
        await chat.say("/voice on")
        await chat.say("/voice off")
        await chat.say("hi again")
    assert oai.speeches == []
    assert fake.voices == []


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_a_speech_server_down_or_slow_keeps_the_text_and_adds_a_note(
    store: MemoryStore, fake: FakeBotApi, oai: FakeOpenAI, failure: str
) -> None:
    if failure == "down":
        oai.speech_status = 500
    else:
        oai.speech_stall = True
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url, timeout=0.3), polling(engine, fake):
        chat = Chat(fake, ALICE)
        await chat.say("/voice on")
        assert await chat.say("hi") == SHOWN
        await fake.wait_for(lambda: fake.shown(ALICE.id)[-1].text == SPEECH_FAILED)
    assert fake.voices == []
    assert len(oai.speeches) == 1
    # the reply was stored whole
    [conversation] = await store.export_owner(ALICE_OWNER)
    assert [t.text for t in conversation.turns][-1] == REPLY


async def test_voice_on_where_no_speech_service_is_set_up_says_so(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    async with polling(engine, fake):
        chat = Chat(fake, ALICE)
        answer = await chat.say("/voice on")
        assert "not set up here" in answer
        await chat.say("hi")
    assert fake.voices == []
    assert "voice" not in await store.get_preferences(ALICE_OWNER)
