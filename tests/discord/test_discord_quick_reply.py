"""A reply complete before its first message is due goes out as one message, not a
draft and an edit; a slower one still shows while it is written. Counted on the fake
Discord server, over the gateway (a DM, a slash command)."""

from __future__ import annotations

from bot.store.memory import MemoryStore
from tests.support.discord_harness import (
    DM_CHANNEL_ID,
    build_engine,
    message,
    running,
    slash,
)
from tests.support.discord_server import FakeDiscord
from tests.support.fakes import TextBackend

CURSOR = "▌"
QUICK = "Hello there! Nice to meet you. How can I help?"  # 46 characters
#: Five deltas about 0.25 s in all: complete long before first_message_delay.
QUICK_BACKEND = {"chunk": 10, "pause": 0.05}


async def test_a_quick_dm_reply_is_one_message(fake: FakeDiscord, store: MemoryStore) -> None:
    engine = build_engine(store, TextBackend(QUICK, **QUICK_BACKEND))
    async with running(fake, engine, first_message_delay=2.0) as adapter:
        await fake.dispatch("MESSAGE_CREATE", message("hi", guild=False))
        await fake.wait_for(
            lambda: (
                fake.transcript(channel=DM_CHANNEL_ID) == [QUICK] and adapter.replies_in_flight == 0
            )
        )

    assert len(fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/messages$")) == 1
    assert fake.find("PATCH", rf"^/channels/{DM_CHANNEL_ID}/messages/") == [], "no edit"


async def test_a_quick_slash_reply_fills_the_deferred_message_once(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    engine = build_engine(store, TextBackend(QUICK, **QUICK_BACKEND))
    async with running(fake, engine, first_message_delay=2.0) as adapter:
        payload = slash("chat", message="hi")
        token = payload["token"]
        await fake.dispatch("INTERACTION_CREATE", payload)
        await fake.wait_for(
            lambda: fake.transcript(token=token) == [QUICK] and adapter.replies_in_flight == 0
        )

    edits = fake.find("PATCH", rf"^/webhooks/1000/{token}/messages/@original$")
    assert [call.content for call in edits] == [QUICK], "no draft before the final text"
    assert fake.find("POST", rf"^/webhooks/1000/{token}$") == []


async def test_a_slow_reply_still_shows_while_it_is_written(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    text = " ".join(f"word{i}" for i in range(30))
    # six deltas 0.3 s apart: far longer than first_message_delay
    engine = build_engine(store, TextBackend(text, chunk=len(text) // 5, pause=0.3))
    async with running(fake, engine, first_message_delay=0.1, edit_interval=0.2) as adapter:
        await fake.dispatch("MESSAGE_CREATE", message("hi", guild=False))
        await fake.wait_for(
            lambda: (
                fake.transcript(channel=DM_CHANNEL_ID) == [text] and adapter.replies_in_flight == 0
            )
        )

    posts = fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/messages$")
    assert len(posts) == 1
    assert CURSOR in (posts[0].content or ""), "the first message is a draft"
    assert fake.find("PATCH", rf"^/channels/{DM_CHANNEL_ID}/messages/")
