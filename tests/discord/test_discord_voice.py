"""Replies read aloud on Discord (``/voice on``): an audio attachment after the reply's
text, for DMs and mentions, slash commands and HTTP interactions; a speech server that
is down leaves the text whole, with a short note."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.web import create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.speech import SPEECH_FAILED
from bot.store.memory import MemoryStore
from tests.discord.test_discord_gateway import reply_in_channel, reply_to_interaction
from tests.discord.test_discord_http_interactions import KEY, Endpoint
from tests.support.discord_harness import build_engine, fast_adapter, message, running, slash
from tests.support.discord_server import APP_ID, FakeDiscord
from tests.support.fakes import TextBackend
from tests.support.speech_samples import FakeOpenAI, speaking, spoken

REPLY = "Good **morning**, Alice."
SPOKEN_WORDS = "Good morning, Alice."

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_a_dm_reply_is_followed_by_its_audio(
    fake: FakeDiscord, store: MemoryStore, oai: FakeOpenAI
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url, voice="echo"), running(fake, engine) as adapter:
        [answer] = await reply_in_channel(fake, adapter, message("/voice on", guild=False))
        assert answer.startswith("Voice replies: on.")
        pieces = await reply_in_channel(fake, adapter, message("hi", guild=False), count=3)
    assert pieces[1] == REPLY
    [upload] = fake.uploads
    assert upload["filename"] == "reply.ogg" and upload["data"] == spoken(SPOKEN_WORDS)
    assert upload["path"].startswith("/channels/")
    assert oai.speeches[0]["voice"] == "echo"
    # the audio is posted after the text
    posts = [c for c in fake.calls if c.method == "POST" and c.path.endswith("/messages")]
    assert posts[-1].body.get("_files") == ["reply.ogg"]


async def test_the_voice_slash_command_and_a_chat_command_with_audio(
    fake: FakeDiscord, store: MemoryStore, oai: FakeOpenAI
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url), running(fake, engine) as adapter:
        shown = await reply_to_interaction(fake, adapter, slash("voice", state="on"))
        assert shown[0].startswith("Voice replies: on.")
        payload = slash("chat", message="hello")
        await reply_to_interaction(fake, adapter, payload)
        await fake.wait_for(lambda: bool(fake.uploads) and adapter.replies_in_flight == 0)
    [upload] = fake.uploads
    assert upload["path"] == f"/webhooks/{APP_ID}/{payload['token']}"
    assert upload["data"] == spoken(SPOKEN_WORDS)
    synced = [c.body for c in fake.calls if c.method == "PUT" and "/commands" in c.path]
    voice = next(command for command in synced[-1] if command["name"] == "voice")
    assert [c["value"] for c in voice["options"][0]["choices"]] == ["on", "off"]


async def test_a_speech_server_that_is_down_leaves_the_text_and_a_note(
    fake: FakeDiscord, store: MemoryStore, oai: FakeOpenAI
) -> None:
    oai.speech_status = 503
    engine = build_engine(store, TextBackend(REPLY))
    async with speaking(engine, oai.url), running(fake, engine) as adapter:
        await reply_in_channel(fake, adapter, message("/voice on", guild=False))
        pieces = await reply_in_channel(fake, adapter, message("hi", guild=False), count=3)
    assert pieces[1:] == [REPLY, SPEECH_FAILED]
    assert fake.uploads == []


async def test_an_http_interaction_reply_is_followed_by_its_audio(
    fake: FakeDiscord,
    store: MemoryStore,
    oai: FakeOpenAI,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    engine = build_engine(store, TextBackend(REPLY))
    settings = fake.settings(token=None, public_key=KEY.verify_key.encode().hex())
    adapter = fast_adapter(engine, settings, events=store)
    accounts = AccountService(store, hasher=PasswordHasher(TEST_PARAMS))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(speaking(engine, oai.url))
        await stack.enter_async_context(adapter)
        app = create_app(engine, accounts, upkeep=store, extra_routes=adapter.web_routes())
        endpoint = Endpoint(await aiohttp_client(app), adapter, fake)
        assert (await endpoint.reply(slash("voice", state="on")))[0].startswith("Voice replies")
        payload = slash("chat", message="hello")
        assert (await endpoint.reply(payload))[0] == REPLY
        await fake.wait_for(lambda: bool(fake.uploads) and adapter.replies_in_flight == 0)
    [upload] = fake.uploads
    assert upload["path"] == f"/webhooks/{APP_ID}/{payload['token']}"
    assert upload["content_type"] == "audio/ogg" and upload["data"] == spoken(SPOKEN_WORDS)
