"""Groups: answered only when addressed; each member has their own history there."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.memory import MemoryStore
from tests.support.telegram_harness import (
    ALICE,
    BOB,
    GROUP_ID,
    Chat,
    Person,
    bot_message,
    build_engine,
    polling,
)
from tests.support.telegram_server import FakeBotApi


def in_group(fake: FakeBotApi, person: Person) -> Chat:
    return Chat(fake, person, chat_id=GROUP_ID)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        pytest.param("@persona_bot what is Docker?", "re:what is Docker? saw:[]", id="mention"),
        pytest.param("hey @Persona_Bot, hello", "re:hey hello saw:[]", id="mention-any-case"),
        pytest.param("/whoami@persona_bot", "this group (your own history here)", id="cmd@bot"),
        pytest.param("/whoami", "this group (your own history here)", id="bare-command"),
    ],
)
async def test_addressed_group_messages_are_answered(
    store: MemoryStore, fake: FakeBotApi, text: str, answer: str
) -> None:
    async with polling(build_engine(store), fake):
        reply = await in_group(fake, ALICE).say(text)
    assert answer in reply
    first = fake.shown(GROUP_ID)[0]
    assert first.reply_to == 1, "a group answer quotes the message it answers"


async def test_a_reply_to_the_bot_is_addressed(store: MemoryStore, fake: FakeBotApi) -> None:
    async with polling(build_engine(store), fake):
        chat = in_group(fake, ALICE)
        reply = await chat.say("and then?", reply_to=bot_message(GROUP_ID, 77))
    assert reply == "re:and then? saw:[]"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("just chatting among ourselves", id="plain"),
        pytest.param("ask @someone_else about it", id="other-mention"),
        pytest.param("/help@other_bot", id="other-bots-command"),
        pytest.param("mail persona_bot@example.org", id="not-a-mention"),
    ],
)
async def test_unaddressed_group_messages_are_ignored(
    store: MemoryStore, fake: FakeBotApi, text: str
) -> None:
    async with polling(build_engine(store), fake):
        chat = in_group(fake, ALICE)
        await chat.send(text)
        await chat.send(text, reply_to=bot_message(GROUP_ID, 5, "x") | {"from": BOB.user()})
        # A later addressed message is answered, and is the only one answered.
        assert await chat.say("@persona_bot ping") == "re:ping saw:[]"
    sent = fake.calls_to("sendMessage", GROUP_ID)
    assert [c.params["reply_parameters"]["message_id"] for c in sent] == [3], "only the third"


async def test_members_have_separate_histories(store: MemoryStore, fake: FakeBotApi) -> None:
    async with polling(build_engine(store), fake):
        alice, bob = in_group(fake, ALICE), in_group(fake, BOB)
        assert await alice.say("@persona_bot apples") == "re:apples saw:[]"
        assert await bob.say("@persona_bot bananas") == "re:bananas saw:[]"
        assert await alice.say("@persona_bot cherries") == "re:cherries saw:[apples]"
        assert await bob.say("@persona_bot dates") == "re:dates saw:[bananas]"
        # Alice's private chat is another conversation again.
        assert await Chat(fake, ALICE).say("elderberries") == "re:elderberries saw:[]"


async def test_members_are_answered_concurrently(store: MemoryStore, fake: FakeBotApi) -> None:
    async with polling(build_engine(store), fake):
        alice, bob = in_group(fake, ALICE), in_group(fake, BOB)
        await asyncio.gather(alice.send("@persona_bot one"), bob.send("@persona_bot two"))

        def both() -> bool:
            texts = fake.transcript(GROUP_ID)
            return sorted(texts) == ["re:one saw:[]", "re:two saw:[]"]

        await fake.wait_for(both)
