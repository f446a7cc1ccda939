"""Telegram albums: several photos sent together (one update each, one
``media_group_id``) are answered once, with every image and the caption of whichever
part carries it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tests.support.media_samples as samples
from bot.config import MediaSettings
from bot.engine import Engine
from bot.media import MediaProcessor
from bot.messages import Identity, guest_owner
from bot.store.memory import MemoryStore
from tests.support.media_samples import FileEcho
from tests.support.telegram_harness import ALICE, GROUP_ID, Chat, build_engine, polling
from tests.support.telegram_server import FakeBotApi

ALICE_OWNER = guest_owner(Identity("telegram", str(ALICE.id)))


def engine(store: MemoryStore) -> Engine:
    made = build_engine(store, FileEcho())  # type: ignore[arg-type]
    made.media = MediaProcessor(MediaSettings())
    return made


def photo(file_id: str, group: str, caption: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {
        "media_group_id": group,
        "photo": [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 40, "height": 30}],
    }
    if caption is not None:
        part["caption"] = caption
        if caption.startswith("@"):
            name = caption.split()[0]
            part["caption_entities"] = [{"type": "mention", "offset": 0, "length": len(name)}]
    return part


async def send_album(chat: Chat, parts: list[dict[str, Any]], gap: float = 0.0) -> None:
    for part in parts:
        await chat.send(None, **part)
        await asyncio.sleep(gap)


@pytest.mark.parametrize("captioned", [0, 1], ids=["caption-first", "caption-second"])
async def test_an_album_is_answered_once_with_all_its_images(
    store: MemoryStore, fake: FakeBotApi, captioned: int
) -> None:
    for name in ("a", "b", "c"):
        fake.files[name] = samples.jpeg(40, 30)
    parts = [photo(name, "album1") for name in ("a", "b", "c")]
    parts[captioned] = photo("ab"[captioned], "album1", "which one is best?")
    async with polling(engine(store), fake):
        chat = Chat(fake, ALICE)
        # the parts come a moment apart, as Telegram sends them
        await send_album(chat, parts, gap=0.05)
        await fake.wait_for(lambda: bool(fake.transcript(ALICE.id)))
        await asyncio.sleep(1.5)  # longer than the album's wait: a second answer would be here
    [answer] = fake.transcript(ALICE.id)
    assert answer.startswith("re:which one is best?")
    assert answer.count("[an image photo-u") == 3
    assert sorted(fake.downloads) == ["a", "b", "c"]
    # one user turn holds the three images
    turns = [t for c in await store.export_owner(ALICE_OWNER) for t in c.turns]
    [user_turn] = [t for t in turns if t.role == "user"]
    assert len(user_turn.attachments) == 3


async def test_a_group_album_addressed_by_its_caption_is_answered_once(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    for name in ("g1", "g2"):
        fake.files[name] = samples.jpeg(40, 30)
    parts = [photo("g1", "album2", "@persona_bot look"), photo("g2", "album2")]
    async with polling(engine(store), fake):
        chat = Chat(fake, ALICE, chat_id=GROUP_ID)
        await send_album(chat, parts)
        await fake.wait_for(lambda: bool(fake.transcript(GROUP_ID)))
        await asyncio.sleep(1.5)
    [answer] = fake.transcript(GROUP_ID)
    assert answer.startswith("re:look") and answer.count("[an image") == 2


async def test_a_message_after_an_album_is_answered_after_it(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    for name in ("x", "y"):
        fake.files[name] = samples.jpeg(40, 30)
    async with polling(engine(store), fake):
        chat = Chat(fake, ALICE)
        await send_album(chat, [photo("x", "album3", "two"), photo("y", "album3")])
        await chat.send("and hello")
        await fake.wait_for(lambda: len(fake.transcript(ALICE.id)) == 2)
    first, second = fake.transcript(ALICE.id)
    assert first.startswith("re:two") and first.count("[an image") == 2
    assert second.startswith("re:and hello")
