"""Wiring: what `personabridge run` starts for a given configuration."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import nacl.signing
import pytest

from bot.app import PersonaBridge
from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def settings_for(tmp_path: Path, **extra: str):  # type: ignore[no-untyped-def]
    env = {
        "PERSONABRIDGE_STORE__SQLITE_PATH": str(tmp_path / "pb.db"),
        "PERSONABRIDGE_PERSONAS_DIR": str(ROOT / "personas"),
        "PERSONABRIDGE_WEB__PORT": "0",
        "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    env.update({f"PERSONABRIDGE_{k}": v for k, v in extra.items()})
    return load_settings(env, use_dotenv=False)


async def test_defaults_start_only_the_web_page(tmp_path: Path) -> None:
    async with PersonaBridge(settings_for(tmp_path)) as bridge:
        assert [a.name for a in bridge.enabled_adapters()] == ["web"]


async def test_discord_interactions_are_served_by_the_web_server(tmp_path: Path) -> None:
    key = nacl.signing.SigningKey.generate()
    public = key.verify_key.encode().hex()
    settings = settings_for(tmp_path, DISCORD__PUBLIC_KEY=public)
    async with PersonaBridge(settings) as bridge:
        adapters = bridge.enabled_adapters()
        assert [a.name for a in adapters] == ["discord", "web"]
        discord, web = adapters
        async with discord, web:
            body = json.dumps({"type": 1, "id": "1", "application_id": "2", "token": "t"})
            stamp = str(int(time.time()))
            signature = key.sign((stamp + body).encode()).signature.hex()
            headers = {
                "X-Signature-Ed25519": signature,
                "X-Signature-Timestamp": stamp,
                "Content-Type": "application/json",
            }
            url = f"{web.url}/discord/interactions"  # type: ignore[attr-defined]
            async with aiohttp.ClientSession() as http:
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 200
                    assert (await response.json())["type"] == 1
                headers["X-Signature-Timestamp"] = str(int(time.time()) - 3600)
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 401


async def test_webhook_routes_without_the_web_server_is_a_clear_error(tmp_path: Path) -> None:
    key = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    settings = settings_for(tmp_path, DISCORD__PUBLIC_KEY=key, WEB__ENABLED="false")
    async with PersonaBridge(settings) as bridge:
        with pytest.raises(ConfigError, match="WEB__ENABLED"):
            bridge.enabled_adapters()


async def test_telegram_webhook_route_is_hosted_by_the_web_server(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        TELEGRAM__TOKEN="123:abc",
        TELEGRAM__MODE="webhook",
        TELEGRAM__WEBHOOK_SECRET="s3cret-Value",
        TELEGRAM__API_BASE_URL="http://127.0.0.1:9",
    )
    async with PersonaBridge(settings) as bridge:
        adapters = bridge.enabled_adapters()
        assert [a.name for a in adapters] == ["telegram", "web"]
        web = adapters[-1]
        paths = {r.resource.canonical for r in web.app.router.routes() if r.resource}  # type: ignore[attr-defined]
        assert "/telegram/webhook" in paths


def test_tuning_settings_reach_the_adapters_options(tmp_path: Path) -> None:
    from adapters.discord import DiscordOptions
    from adapters.telegram import TelegramOptions
    from bot.app import options_from

    settings = settings_for(
        tmp_path,
        DISCORD__EDIT_INTERVAL="0.25",
        DISCORD__SHARD_COUNT="4",
        DISCORD__SHARD_IDS="0,2",
        TELEGRAM__GROUP_EDIT_INTERVAL="5",
        TELEGRAM__WEBHOOK_PATH="/tg/hook",
    )
    discord = options_from(DiscordOptions, settings.discord)
    assert (discord.edit_interval, discord.shard_count, discord.shard_ids) == (0.25, 4, (0, 2))
    telegram = options_from(TelegramOptions, settings.telegram)
    assert (telegram.group_edit_interval, telegram.webhook_path) == (5.0, "/tg/hook")
    assert telegram.private_edit_interval == 1.0
