"""What a reply costs on the wire to the Bot API: JSON bodies (files alone go as
multipart), and no PTB ``Message`` built from Telegram's answers to the reply's writes
(only the message id is read from them)."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Message

from bot.store.memory import MemoryStore
from tests.support.fakes import TextBackend
from tests.support.speech_samples import FakeOpenAI, speaking
from tests.support.telegram_harness import ALICE, Chat, build_engine, message, polling, update
from tests.support.telegram_harness import webhook as webhook_adapter
from tests.support.telegram_server import FakeBotApi

JSON = "application/json"


async def test_calls_go_as_json_and_files_as_multipart(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    engine = build_engine(store, TextBackend("Hello, Alice."))
    async with FakeOpenAI() as oai, speaking(engine, oai.url), polling(engine, fake):
        chat = Chat(fake, ALICE)
        await chat.say("/voice on")
        assert await chat.say("hi") == "Hello, Alice."
        await fake.wait_for(lambda: bool(fake.voices))
    by_method: dict[str, set[str]] = {}
    for call, encoding in zip(fake.calls, fake.encodings, strict=True):
        by_method.setdefault(call.method, set()).add(encoding)
    assert by_method["sendMessage"] == {JSON}
    assert by_method["getUpdates"] == {JSON}
    assert by_method["sendVoice"] == {"multipart/form-data"}


async def test_a_reply_builds_no_message_from_telegrams_answers(
    store: MemoryStore, fake: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each update's message is parsed once, when it comes in; the answers to the
    reply's sendMessage and editMessageText are read for their id only."""
    parsed: list[dict[str, Any]] = []
    original = Message.de_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Message], data: dict[str, Any], bot: Any = None) -> Message:
        parsed.append(data)
        return original(cls, data, bot)  # type: ignore[no-any-return]

    monkeypatch.setattr(Message, "de_json", classmethod(counting))
    # a reply streamed in words, so that it is sent and then edited
    engine = build_engine(store, TextBackend("one two three four five", chunk=4, pause=0.05))
    async with webhook_adapter(
        engine, fake, store=store, first_message_delay=0.0, private_edit_interval=0.01
    ) as hook:
        for n in range(3):
            body = message(ALICE, f"hello {n}", message_id=n + 1)
            assert await hook.post({"update_id": fake.new_update_id(), **update(body)}) == 200
            await fake.wait_for_text(ALICE.id, "one two three four five")
            fake.chats.clear()
    assert fake.calls_to("sendMessage") and fake.calls_to("editMessageText")
    assert [data["text"] for data in parsed] == ["hello 0", "hello 1", "hello 2"]
