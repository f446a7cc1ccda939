"""Attachments on Discord messages (DMs, mentions, replies), fetched by discord.py from
the URL in the event, here the fake server's loopback address."""

from __future__ import annotations

from typing import Any

import tests.support.media_samples as samples
from adapters.discord import DiscordAdapter
from bot.backends.guard import ReplyGuard
from bot.config import MediaSettings
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.media import MediaProcessor
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.discord.test_discord_gateway import done, reply_to_interaction
from tests.support.discord_harness import FAST, message, running, slash, snowflake
from tests.support.discord_server import BOT, FakeDiscord
from tests.support.fakes import make_persona
from tests.support.media_samples import FakeTranscriber, FileEcho


def engine(store: MemoryStore, **limits: Any) -> Engine:
    personas = PersonaLibrary([make_persona("ada", "Professor Ada", backend="echo")])
    made = build_engine(store, personas, ReplyGuard({"echo": FileEcho()}, FAST))
    made.media = MediaProcessor(MediaSettings.model_validate(limits), FakeTranscriber("hi there"))
    return made


def attachment(
    fake: FakeDiscord, name: str, data: bytes, content_type: str | None = None, **extra: Any
) -> dict[str, Any]:
    fake.attachments[name] = data
    url = fake.attachment_url(name)
    body = {"id": snowflake(), "filename": name, "size": len(data), "url": url, "proxy_url": url}
    if content_type:
        body["content_type"] = content_type
    return body | extra


async def answer(fake: FakeDiscord, adapter: DiscordAdapter, payload: dict[str, Any]) -> str:
    channel = int(payload["channel_id"])
    await fake.dispatch("MESSAGE_CREATE", payload)
    pieces = await fake.wait_for(lambda: done(adapter, fake.transcript(channel=channel)))
    return "\n".join(pieces)


async def test_a_dm_with_only_an_image(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store)) as adapter:
        payload = message("", guild=False)
        payload["attachments"] = [attachment(fake, "cat.png", samples.png(40, 20), "image/png")]
        text = await answer(fake, adapter, payload)
    assert text == "re:[an image cat.png, 40x20]"
    assert fake.attachment_downloads == ["cat.png"]


async def test_a_voice_message_is_transcribed(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store)) as adapter:
        payload = message("", guild=False) | {"flags": 1 << 13}
        voice = attachment(
            fake, "voice-message.ogg", samples.ogg_voice(), "audio/ogg", duration_secs=2.0,
            waveform="AAAA",
        )  # fmt: skip
        payload["attachments"] = [voice]
        text = await answer(fake, adapter, payload)
    assert text == "🎤 “hi there”\n\nre:hi there"


async def test_a_mention_with_a_text_file_and_a_mislabelled_one(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store)) as adapter:
        payload = message("<@1000> read these", mentions=[BOT])
        payload["attachments"] = [
            attachment(fake, "notes.txt", b"remember the milk", "text/plain"),
            attachment(fake, "photo.png", samples.zip_file(), "image/png"),
        ]
        text = await answer(fake, adapter, payload)
    assert text.startswith("⚠️ photo.png was not used: it is an archive (ZIP)")
    assert "re:read these\n\nnotes.txt:" in text and "remember the milk" in text


async def test_files_of_unaddressed_guild_messages_are_not_fetched(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store)) as adapter:
        ignored = message("just chatting")
        ignored["attachments"] = [attachment(fake, "a.png", samples.png(), "image/png")]
        await fake.dispatch("MESSAGE_CREATE", ignored)
        later = message("<@1000> hello", mentions=[BOT])
        assert await answer(fake, adapter, later) == "re:hello"
    assert fake.attachment_downloads == []


async def test_a_stalled_attachment_is_given_up(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store, download_timeout=0.3)) as adapter:
        payload = message("look", guild=False)
        payload["attachments"] = [attachment(fake, "slow.jpg", samples.jpeg(), "image/jpeg")]
        fake.stalled_attachments.add("slow.jpg")
        text = await answer(fake, adapter, payload)
    assert text == "⚠️ slow.jpg was not used: it did not download within 0.3 s.\n\nre:look"


async def test_the_chat_command_takes_an_attachment(store: MemoryStore) -> None:
    async with FakeDiscord() as fake, running(fake, engine(store)) as adapter:
        file = attachment(fake, "notes.txt", b"remember the milk", "text/plain")
        payload = slash("chat", message="read this")
        payload["data"]["options"].append({"name": "attachment", "type": 11, "value": file["id"]})
        payload["data"]["resolved"] = {"attachments": {file["id"]: file}}
        pieces = await reply_to_interaction(fake, adapter, payload)
    assert "\n".join(pieces).startswith("re:read this\n\nnotes.txt:")
    assert fake.attachment_downloads == ["notes.txt"]
    synced = [c.body for c in fake.calls if c.method == "PUT" and "/commands" in c.path]
    chat = next(command for command in synced[-1] if command["name"] == "chat")
    assert [(o["name"], o["type"], o.get("required")) for o in chat["options"]] == [
        ("message", 3, True),
        ("attachment", 11, False),
    ]
