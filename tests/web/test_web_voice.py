"""Replies read aloud in the web chat (``/voice on``): a ``voice`` event after the
reply, and ``GET /chat/voice/...``, which reads only the logged-in account's own turns
and has them spoken by the fake speech endpoint; a speech server that is down costs the
player, never the reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.web.routes_voice import SYNTHESES, SYNTHESES_PER_MINUTE
from bot.engine import Engine
from bot.store.memory import MemoryStore
from tests.support.speech_samples import FakeOpenAI, speaking, spoken
from tests.support.web_client import Client, MakeClient, sign_up
from tests.web.test_web_chat import say


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def voice_url(events: list[tuple[str, dict[str, object]]]) -> str:
    names = [name for name, _ in events]
    assert names[-2:] == ["done", "voice"], names  # the player comes after the reply
    url = events[-1][1]["url"]
    assert isinstance(url, str)
    return url


async def test_a_reply_gets_a_player_that_plays_it(
    client: Client, engine: Engine, oai: FakeOpenAI
) -> None:
    async with speaking(engine, oai.url, voice="fable"):
        await sign_up(client, "ada")
        assert [name for name, _ in await say(client, "hi")][-1] == "done"  # voice is off
        await say(client, "/voice on")
        events = await say(client, "hello there")
        reply = events[-2][1]["text"]
        url = voice_url(events)
        assert oai.speeches == []  # nothing is spoken until the player asks
        response = await client.get(url)
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/ogg"
        assert "private" in response.headers["Cache-Control"]
        assert await response.read() == spoken(str(reply))
        again = await client.get(url)
        assert await again.read() == spoken(str(reply))
    assert [s["voice"] for s in oai.speeches] == ["fable"]  # the second play was kept


async def test_no_one_else_hears_an_accounts_reply(
    make_client: MakeClient, engine: Engine, oai: FakeOpenAI
) -> None:
    async with speaking(engine, oai.url):
        ada, bob = await make_client(), await make_client()
        await sign_up(ada, "ada")
        await sign_up(bob, "bob")
        await say(ada, "/voice on")
        url = voice_url(await say(ada, "a secret"))
        await say(bob, "/voice on")
        # bob has a turn of that number too, in his own conversation: he hears his own
        mine = voice_url(await say(bob, "something"))
        assert mine == url
        heard = await (await bob.get(url)).read()
        assert heard.startswith(spoken("re:something")) and b"secret" not in heard
        stranger = await make_client()
        assert (await stranger.get(url)).status == 401
        assert (await ada.get(url.rsplit("/", 1)[0] + "/999")).status == 404
    assert not any("a secret" in s["input"] for s in oai.speeches)


async def test_voice_off_means_no_player_and_no_audio(
    client: Client, engine: Engine, oai: FakeOpenAI
) -> None:
    async with speaking(engine, oai.url):
        await sign_up(client, "ada")
        await say(client, "/voice on")
        url = voice_url(await say(client, "hello"))
        await say(client, "/voice off")
        assert [name for name, _ in await say(client, "hi")][-1] == "done"
        assert (await client.get(url)).status == 404
    assert oai.speeches == []


async def test_a_speech_server_that_is_down_costs_only_the_player(
    client: Client, engine: Engine, oai: FakeOpenAI
) -> None:
    oai.speech_status = 500
    async with speaking(engine, oai.url):
        await sign_up(client, "ada")
        await say(client, "/voice on")
        events = await say(client, "hello")
        assert events[-2][0] == "done" and events[-2][1]["kind"] == "chat"
        response = await client.get(voice_url(events))
        assert response.status == 503
        assert "couldn't read this reply aloud" in (await response.json())["error"]


async def test_clips_made_for_an_account_are_limited_and_replays_are_free(
    client: Client, engine: Engine, store: MemoryStore, oai: FakeOpenAI
) -> None:
    """The speech server is paid per character: one account cannot have clips made in a
    loop. A clip played again from memory costs nothing; a refusal says when to retry."""
    async with speaking(engine, oai.url):
        await sign_up(client, "ada")
        await say(client, "/voice on")
        first = voice_url(await say(client, "one"))
        second = voice_url(await say(client, "two"))
        account = await store.find_account("ada")
        assert account is not None
        budget = client.app[SYNTHESES]
        for _ in range(SYNTHESES_PER_MINUTE - 1):  # the minute's clips, all but one
            assert budget.try_acquire(account.id)
        assert (await client.get(first)).status == 200
        assert (await client.get(first)).status == 200  # played again: kept, free
        refused = await client.get(second)
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "try again" in (await refused.json())["error"]
    assert [s["input"] for s in oai.speeches] == ["re:one saw:[]"]
