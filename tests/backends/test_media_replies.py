"""Messages with files through the engine to each backend: what the persona is given,
what the user is shown, what is stored."""

from __future__ import annotations

import base64
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable

import pytest

import tests.support.media_samples as samples
from bot import engine_parts
from bot.app import build_backends
from bot.app_settings import load_settings
from bot.backends.guard import ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.backends.openai import OpenAIBackend
from bot.backends.transcription import OpenAITranscriber
from bot.config import AccessSettings, MediaSettings
from bot.engine import Engine
from bot.media import MediaProcessor
from bot.messages import AttachmentKind, Incoming, IncomingFile, ReplyKind
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.support.backend_harness import FAST, build_engine, card
from tests.support.engine import dm, key, send
from tests.support.openai_server import FakeOpenAI


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def closing() -> AsyncIterator[list[OpenAIBackend | OpenAITranscriber]]:
    """Clients a test made, closed after it."""
    clients: list[OpenAIBackend | OpenAITranscriber] = []
    yield clients
    for client in clients:
        await client.aclose()


def with_files(incoming: Incoming, *files: IncomingFile) -> Incoming:
    return dataclasses.replace(incoming, files=files)


@pytest.fixture
def engine_for(
    store: MemoryStore,
    server: FakeOpenAI,
    closing: list[OpenAIBackend | OpenAITranscriber],
) -> Callable[..., Engine]:
    def make(*, vision: bool, **limits: object) -> Engine:
        backend = OpenAIBackend(base_url=server.url, model="m", timeout=5, vision=vision)
        transcriber = OpenAITranscriber(base_url=server.url, model="whisper-1")
        closing.extend([backend, transcriber])
        engine = build_engine(store, [backend], [card()])
        engine.media = MediaProcessor(MediaSettings.model_validate(limits), transcriber)
        return engine

    return make


def photo() -> IncomingFile:
    return IncomingFile.of_bytes("cat.jpg", samples.jpeg(3000, 2000), "image/jpeg")


async def test_a_vision_model_gets_the_image_as_an_image_url_part(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=True, max_image_side=300)
    _, done = await send(engine, with_files(dm("alice", "what is this?"), photo()))
    assert done.kind is ReplyKind.CHAT
    last_user = [m for m in server.chat_requests[-1]["messages"] if m["role"] == "user"][-1]
    text, image = last_user["content"]
    assert text["type"] == "text" and text["text"].startswith("what is this?")
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent.startswith(b"\xff\xd8\xff") and len(sent) < len(samples.jpeg(3000, 2000))
    # stored: the metadata, never the bytes
    (turn, _) = (await store.load_window(key("alice"), 10)).turns
    assert turn.attachments[0].image is None
    assert (turn.attachments[0].width, turn.attachments[0].height) == (300, 200)


async def test_only_the_current_message_image_is_sent(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=True)
    await send(engine, with_files(dm("alice", "first"), photo()))
    await send(engine, dm("alice", "and now?"))
    messages = server.chat_requests[-1]["messages"]
    assert all(isinstance(m["content"], str) for m in messages)  # no image parts at all
    earlier = next(m["content"] for m in messages if m["role"] == "user")
    assert "[an image cat.jpg, 1568x1045]" in earlier


async def test_a_model_without_vision_gets_a_description(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=False)
    await send(engine, with_files(dm("alice", ""), photo()))
    last_user = [m for m in server.chat_requests[-1]["messages"] if m["role"] == "user"][-1]
    assert last_user["content"] == "[an image cat.jpg, 1568x1045]"


async def test_a_card_can_turn_vision_on(
    store: MemoryStore, server: FakeOpenAI, closing: list[OpenAIBackend | OpenAITranscriber]
) -> None:
    backend = OpenAIBackend(base_url=server.url, model="m", timeout=5, vision=False)
    closing.append(backend)
    engine = build_engine(store, [backend], [card(vision=True)])
    await send(engine, with_files(dm("alice", "hi"), photo()))
    last_user = [m for m in server.chat_requests[-1]["messages"] if m["role"] == "user"][-1]
    assert [part["type"] for part in last_user["content"]] == ["text", "image_url"]


async def test_a_voice_note_is_heard_and_shown_back(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=False)
    voice = IncomingFile.of_bytes("voice.ogg", samples.ogg_voice(), "audio/ogg", voice=True)
    deltas, done = await send(engine, with_files(dm("alice", ""), voice))
    assert server.transcriptions[0]["model"] == "whisper-1"
    assert server.transcriptions[0]["data"] == samples.ogg_voice()
    assert done.preface == "🎤 “see you at nine”\n\n"
    assert deltas[0] == done.preface and done.shown.startswith(done.preface)
    assert done.text == "You said: see you at nine"  # the transcript is what was said
    (turn, _) = (await store.load_window(key("alice"), 10)).turns
    assert (turn.text, turn.attachments[0].text) == ("", "see you at nine")


async def test_transcription_down_still_answers_the_text(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    server.transcription_status = 503
    engine = engine_for(vision=False)
    voice = IncomingFile.of_bytes("voice.ogg", samples.ogg_voice(), "audio/ogg")
    _, done = await send(engine, with_files(dm("alice", "call me"), voice))
    assert done.kind is ReplyKind.CHAT and done.text == "You said: call me"
    assert "voice.ogg was not used" in done.preface and "transcription failed" in done.preface


async def test_a_refused_file_alone_is_answered_and_nothing_is_stored(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=True)
    bomb = IncomingFile.of_bytes("big.png", samples.huge_png_header(), "image/png")
    _, done = await send(engine, with_files(dm("alice", ""), bomb))
    assert done.kind is ReplyKind.ERROR
    assert done.text.startswith("⚠️ big.png was not used") and "50 megapixels" in done.text
    assert server.chat_requests == []
    assert (await store.load_window(key("alice"), 10)).turns == ()


async def test_a_refused_file_keeps_the_text(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=True)
    fake_png = IncomingFile.of_bytes("cat.png", samples.zip_file(), "image/png")
    _, done = await send(engine, with_files(dm("alice", "look"), fake_png))
    assert done.text == "You said: look"
    assert "cat.png was not used: it is an archive (ZIP)" in done.preface
    (turn, _) = (await store.load_window(key("alice"), 10)).turns
    assert (turn.text, turn.attachments) == ("look", ())


async def test_a_text_file_is_inlined_as_a_fenced_block(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    engine = engine_for(vision=False)
    notes = IncomingFile.of_bytes("notes.md", b"a ``` b", "text/markdown")
    await send(engine, with_files(dm("alice", "read this"), notes))
    last_user = [m for m in server.chat_requests[-1]["messages"] if m["role"] == "user"][-1]
    assert last_user["content"] == "read this\n\nnotes.md:\n````\na ``` b\n````"


async def test_a_command_with_a_file_does_not_fetch_it(
    store: MemoryStore, server: FakeOpenAI, engine_for: Callable[..., Engine]
) -> None:
    fetched: list[int] = []

    async def fetch(limit: int) -> bytes:
        fetched.append(limit)
        return b"x"

    engine = engine_for(vision=False)
    _, done = await send(engine, with_files(dm("alice", "/help"), IncomingFile("a.txt", fetch)))
    assert done.kind is ReplyKind.COMMAND and fetched == []


async def test_offline_says_it_cannot_see_but_reads_transcripts(store: MemoryStore) -> None:
    offline = OfflineBackend(seed=1)
    persona = card(backend="offline")
    engine = engine_parts.build_engine(
        store, PersonaLibrary([persona]), ReplyGuard({"offline": offline}, FAST)
    )
    _, seen = await send(engine, with_files(dm("alice", ""), photo()))
    assert seen.text == "I can't see pictures from here, I'm afraid. Tell me what it shows?"
    notes = IncomingFile.of_bytes("q.txt", b"What is Docker?")
    _, read = await send(engine, with_files(dm("alice", ""), notes))
    assert read.text == offline.compose(
        persona,
        [],
        dataclasses.replace(
            (await store.load_window(key("alice"), 10)).turns[-2],
            text="What is Docker?",
            attachments=(),
        ),
    )
    assert AttachmentKind.TEXT in {
        a.kind for t in (await store.load_window(key("alice"), 10)).turns for a in t.attachments
    }


async def test_an_unreachable_transcription_server_still_answers_the_text(
    store: MemoryStore, server: FakeOpenAI, closing: list[OpenAIBackend | OpenAITranscriber]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(base_url=server.url, model="m", timeout=5)
    transcriber = OpenAITranscriber(base_url=f"http://127.0.0.1:{port}/v1", model="w", timeout=2)
    closing.extend([backend, transcriber])
    engine = build_engine(store, [backend], [card()])
    engine.media = MediaProcessor(MediaSettings(), transcriber)
    voice = IncomingFile.of_bytes("voice.ogg", samples.ogg_voice(), "audio/ogg")
    _, done = await send(engine, with_files(dm("alice", "call me"), voice))
    assert done.text == "You said: call me"
    assert "voice.ogg was not used: I could not listen to it just now" in done.preface


async def test_openai_vision_setting_reaches_the_backend(
    store: MemoryStore, server: FakeOpenAI, closing: list[OpenAIBackend | OpenAITranscriber]
) -> None:
    environ = {
        "PERSONABRIDGE_OPENAI__BASE_URL": server.url,
        "PERSONABRIDGE_OPENAI__MODEL": "m",
        "PERSONABRIDGE_OPENAI__VISION": "true",
    }
    backend = build_backends(load_settings(environ, use_dotenv=False))["openai"]
    assert isinstance(backend, OpenAIBackend)
    closing.append(backend)
    engine = build_engine(store, [backend], [card()])  # the card says nothing of vision
    await send(engine, with_files(dm("alice", "hi"), photo()))
    last_user = [m for m in server.chat_requests[-1]["messages"] if m["role"] == "user"][-1]
    assert [part["type"] for part in last_user["content"]] == ["text", "image_url"]


async def test_a_guest_where_only_accounts_chat_has_no_file_fetched(store: MemoryStore) -> None:
    fetched: list[int] = []

    async def fetch(limit: int) -> bytes:
        fetched.append(limit)
        return b"hello"

    offline = OfflineBackend(seed=1)
    persona = card(backend="offline")
    engine = engine_parts.build_engine(
        store,
        PersonaLibrary([persona]),
        ReplyGuard({"offline": offline}, FAST),
        access=AccessSettings(linked_only=True),
    )
    _, done = await send(engine, with_files(dm("alice", ""), IncomingFile("a.txt", fetch)))
    assert done.kind is ReplyKind.DENIED and fetched == []
