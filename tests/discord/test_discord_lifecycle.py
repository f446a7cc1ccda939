"""Starting and stopping the adapter, and what its settings may be."""

from __future__ import annotations

import pytest

from adapters.discord import build_discord_adapter
from adapters.discord.settings import DiscordSettings
from bot.app_settings import load_settings
from bot.errors import ConfigError
from bot.store.memory import MemoryStore
from tests.support.discord_harness import CHANNEL_ID, build_engine, fast_adapter, message, running
from tests.support.discord_server import BOT, FakeDiscord


async def test_a_refused_token_is_a_config_error(fake: FakeDiscord, store: MemoryStore) -> None:
    fake.fail_next("GET", "^/users/@me$", status=401)
    adapter = fast_adapter(build_engine(store), fake.settings())
    with pytest.raises(ConfigError, match="DISCORD__TOKEN"):
        async with adapter:
            pass
    assert not fake.identifies, "no gateway connection was tried"


async def test_without_token_or_key_the_adapter_does_nothing(store: MemoryStore) -> None:
    adapter = build_discord_adapter(build_engine(store), DiscordSettings())
    assert adapter.name == "discord"
    assert adapter.web_routes() == []
    async with adapter:
        assert adapter.client is None


def test_a_public_key_that_is_not_one_is_a_config_error(store: MemoryStore) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_KEY"):
        build_discord_adapter(build_engine(store), DiscordSettings(public_key="xyz"), events=store)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param({"EDIT_INTERVAL": "-1"}, "EDIT_INTERVAL", id="negative-interval"),
        pytest.param({"SHARD_IDS": "0"}, "SHARD_IDS", id="ids-without-count"),
        pytest.param({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "SHARD_IDS", id="id-out-of-range"),
    ],
)
def test_invalid_settings_are_named(environ: dict[str, str], named: str) -> None:
    prefixed = {f"PERSONABRIDGE_DISCORD__{key}": value for key, value in environ.items()}
    with pytest.raises(ConfigError, match=f"PERSONABRIDGE_DISCORD__{named}"):
        load_settings(prefixed, use_dotenv=False)


async def test_a_guild_missing_from_the_cache_is_still_no_dm(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    """Without GUILD_CREATE discord.py gives guild=None: that must not read as a DM."""
    async with running(fake, build_engine(store)) as adapter:
        await fake.dispatch("MESSAGE_CREATE", message("not for the bot"))
        await fake.dispatch("MESSAGE_CREATE", message("<@1000> for the bot", mentions=[BOT]))
        pieces = await fake.wait_for(
            lambda: (
                adapter.replies_in_flight == 0
                and (p := fake.transcript(channel=CHANNEL_ID))
                and "▌" not in p[-1]
                and p
            )
        )
    assert pieces == ["re:for the bot saw:[]"]
