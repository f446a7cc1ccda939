"""The Bot API is reached through the proxy the environment names, as PTB's httpx
would (the transport looks it up once instead of letting aiohttp read it per request)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from adapters.telegram import TelegramAdapter
from adapters.telegram.settings import TelegramSettings
from bot.config import WebSettings
from bot.store.base import Store
from tests.support.telegram_harness import ALICE, FAST, Chat, build_engine
from tests.support.telegram_server import TOKEN, FakeBotApi


async def test_the_bot_api_is_reached_through_the_proxy_of_the_environment(
    store: Store, fake: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # The fake answers a proxied request as its own; the API host does not exist, so
    # only through the proxy can the bot start and answer.
    monkeypatch.setenv("HTTP_PROXY", fake.url)
    settings = TelegramSettings(
        token=SecretStr(TOKEN), mode="polling", api_base_url="http://bot-api.invalid"
    )
    async with TelegramAdapter(build_engine(store), settings, WebSettings(), FAST):
        answer = await Chat(fake, ALICE).say("hello through the proxy")

    assert "hello through the proxy" in answer
    assert fake.calls_to("getMe") and fake.calls_to("sendMessage")
