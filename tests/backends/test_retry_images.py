"""``/retry`` after a message with a photo: the model sees the photo again (kept in
memory, never stored); where it is gone (another worker, a restart, too long ago) the
reply says so rather than quietly ignoring it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tests.support.media_samples as samples
from bot.backends.openai import OpenAIBackend
from bot.engine import Engine
from bot.messages import Attachment, AttachmentKind, IncomingFile, ReplyKind, Turn
from bot.recent_images import IMAGES_GONE_NOTE, RecentImages
from bot.store.memory import MemoryStore
from tests.support.backend_harness import build_engine, card
from tests.support.engine import dm, key, reply, send
from tests.support.openai_server import FakeOpenAI


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    async with MemoryStore() as memory:
        yield memory


@pytest.fixture
async def backends(server: FakeOpenAI) -> AsyncIterator[list[OpenAIBackend]]:
    made: list[OpenAIBackend] = []
    yield made
    for backend in made:
        await backend.aclose()


def engine(
    store: MemoryStore, server: FakeOpenAI, made: list[OpenAIBackend], vision: bool
) -> Engine:
    backend = OpenAIBackend(base_url=server.url, model="m", timeout=5, vision=vision)
    made.append(backend)
    return build_engine(store, [backend], [card()])


def image_parts(request: dict[str, Any]) -> list[str]:
    last_user = [m for m in request["messages"] if m["role"] == "user"][-1]
    content = last_user["content"]
    if isinstance(content, str):
        return []
    return [part["image_url"]["url"] for part in content if part["type"] == "image_url"]


def with_photo(text: str) -> Any:
    photo = IncomingFile.of_bytes("cat.jpg", samples.jpeg(400, 300), "image/jpeg")
    return dataclasses.replace(dm("alice", text), files=(photo,))


async def test_retry_shows_the_model_the_image_again(
    store: MemoryStore, server: FakeOpenAI, backends: list[OpenAIBackend]
) -> None:
    bot = engine(store, server, backends, vision=True)
    await send(bot, with_photo("what is this?"))
    done = await reply(bot, dm("alice", "/retry"))
    assert done.kind is ReplyKind.CHAT and IMAGES_GONE_NOTE not in done.shown
    first, retried = server.chat_requests
    assert image_parts(retried) == image_parts(first) != []


async def test_retry_on_another_worker_says_the_image_is_gone(
    store: MemoryStore, server: FakeOpenAI, backends: list[OpenAIBackend]
) -> None:
    await send(engine(store, server, backends, vision=True), with_photo("what is this?"))
    other = engine(store, server, backends, vision=True)  # same store, no images in memory
    deltas, done = await send(other, dm("alice", "/retry"))
    assert done is not None
    assert done.kind is ReplyKind.CHAT
    assert done.note.endswith(IMAGES_GONE_NOTE) and "".join(deltas).endswith(IMAGES_GONE_NOTE)
    assert image_parts(server.chat_requests[-1]) == []
    # the note is about this moment only: the stored reply is the model's text
    turns = (await store.load_window(key("alice"), 10)).turns
    assert IMAGES_GONE_NOTE.strip() not in turns[-1].text


async def test_a_model_without_vision_retries_without_a_note(
    store: MemoryStore, server: FakeOpenAI, backends: list[OpenAIBackend]
) -> None:
    await send(engine(store, server, backends, vision=False), with_photo("what is this?"))
    done = await reply(engine(store, server, backends, vision=False), dm("alice", "/retry"))
    assert done.kind is ReplyKind.CHAT and done.note == ""


async def test_a_newer_message_without_images_is_retried_as_it_was(
    store: MemoryStore, server: FakeOpenAI, backends: list[OpenAIBackend]
) -> None:
    bot = engine(store, server, backends, vision=True)
    await send(bot, with_photo("look"))
    await send(bot, dm("alice", "and now?"))
    done = await reply(bot, dm("alice", "/retry"))
    assert done.note == "" and image_parts(server.chat_requests[-1]) == []
    assert len(bot.recent_images) == 0


def turn(seq: int, *sizes: int) -> Turn:
    files = tuple(
        Attachment(AttachmentKind.IMAGE, "image/jpeg", n, f"p{n}.jpg", image=b"x" * n)
        for n in sizes
    )
    return Turn(seq, "user", "", "alice", 0.0, attachments=files)


def test_recent_images_are_bounded_in_bytes_and_time() -> None:
    now = [0.0]
    kept = RecentImages(max_bytes=1000, keep_seconds=60, clock=lambda: now[0])
    keys = [key(name) for name in ("a", "b", "c")]
    for k in keys:
        kept.keep(k, turn(1, 400))
    # the oldest went to make room
    assert len(kept) == 2 and kept.bytes == 800
    assert kept.restore(keys[0], dataclasses.replace(turn(1, 400)))[1] is True
    restored, lost = kept.restore(keys[2], turn(1, 400))
    assert not lost and restored.attachments[0].image == b"x" * 400
    # another message's images are not this one's
    assert kept.restore(keys[2], turn(2, 400))[1] is True
    now[0] = 61.0
    assert kept.restore(keys[1], turn(1, 400))[1] is True  # expired
    kept.keep(key("d"), turn(1, 10))  # sweeps what expired
    assert len(kept) == 1 and kept.bytes == 10
    # larger than the whole budget: not kept
    kept.keep(key("e"), turn(1, 2000))
    assert len(kept) == 1
