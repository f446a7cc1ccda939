"""Which updates are answered: non-text messages get a polite word; edits, channel
posts, bots and service messages are ignored."""

from __future__ import annotations

import time
from typing import Any

import pytest

from adapters.telegram.handlers import NON_TEXT_REPLY
from bot.store.memory import MemoryStore
from tests.support.telegram_harness import (
    ALICE,
    GROUP_ID,
    STICKER,
    Chat,
    Person,
    bot_message,
    build_engine,
    message,
    polling,
)
from tests.support.telegram_server import FakeBotApi

CHANNEL_ID = -100_900
VIDEO: dict[str, Any] = {
    "video": {"file_id": "vd1", "file_unique_id": "vdu1", "width": 9, "height": 9, "duration": 1}
}
OTHER_BOT = Person(66, "Helper", is_bot=True)


@pytest.mark.parametrize(
    "attachment",
    [
        pytest.param(STICKER, id="sticker"),
        pytest.param(VIDEO | {"caption": "look at this"}, id="video"),
    ],
)
async def test_non_text_messages_get_a_polite_answer(
    store: MemoryStore, fake: FakeBotApi, attachment: dict[str, Any]
) -> None:
    async with polling(build_engine(store), fake):
        assert await Chat(fake, ALICE).say(None, **attachment) == NON_TEXT_REPLY


async def test_non_text_in_a_group_only_when_addressed(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE, chat_id=GROUP_ID)
        await chat.send(None, **STICKER)
        answer = await chat.say(None, reply_to=bot_message(GROUP_ID, 9), **STICKER)
    assert answer == NON_TEXT_REPLY
    assert len(fake.transcript(GROUP_ID)) == 1


def edited(text: str) -> dict[str, Any]:
    body = message(ALICE, text, message_id=50)
    return {"edited_message": body | {"edit_date": int(time.time())}}


def channel_post(text: str) -> dict[str, Any]:
    chat = {"id": CHANNEL_ID, "type": "channel", "title": "News"}
    return {"channel_post": {"message_id": 7, "date": int(time.time()), "chat": chat, "text": text}}


def from_other_bot(text: str) -> dict[str, Any]:
    return {"message": message(OTHER_BOT, text, chat_id=GROUP_ID) | {"message_id": 40}}


def from_bot_in_private(text: str) -> dict[str, Any]:
    return {"message": message(OTHER_BOT, text, chat_id=ALICE.id)}


def member_joined(text: str) -> dict[str, Any]:
    body = message(ALICE, None, chat_id=GROUP_ID, message_id=41)
    return {"message": body | {"new_chat_members": [OTHER_BOT.user()]}}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(edited, id="edited-message"),
        pytest.param(channel_post, id="channel-post"),
        pytest.param(from_other_bot, id="other-bot-in-group"),
        pytest.param(from_bot_in_private, id="bot-in-private-chat"),
        pytest.param(member_joined, id="service-message"),
    ],
)
async def test_ignored_updates(store: MemoryStore, fake: FakeBotApi, make: Any) -> None:
    async with polling(build_engine(store), fake):
        await fake.push_update(make("@persona_bot /help"))
        # Updates are handled in order: once a later message is answered, the ignored
        # one has been seen.
        assert await Chat(fake, ALICE).say("hello") == "re:hello saw:[]"
    answered = {c.chat_id for c in fake.calls if c.method in ("sendMessage", "sendChatAction")}
    assert answered == {ALICE.id}
    assert len(fake.calls_to("sendMessage")) == 1
