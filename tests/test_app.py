"""Wiring: what `personabridge run` starts for a given configuration."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import nacl.signing
import pytest

from bot.app import PersonaBridge
from bot.errors import ConfigError, StoreUnavailable
from bot.store.memory import MemoryStore
from tests.support.platform_start import settings_for


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


async def test_tuning_settings_reach_the_adapters(tmp_path: Path) -> None:
    """Each adapter is given its own section of the loaded settings, as loaded."""
    key = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    settings = settings_for(
        tmp_path,
        DISCORD__PUBLIC_KEY=key,
        DISCORD__EDIT_INTERVAL="0.25",
        DISCORD__FIRST_MESSAGE_DELAY="0.5",
        DISCORD__SHARD_COUNT="4",
        DISCORD__SHARD_IDS="0,2",
        TELEGRAM__TOKEN="123:abc",
        TELEGRAM__MODE="webhook",
        TELEGRAM__GROUP_EDIT_INTERVAL="5",
        TELEGRAM__WEBHOOK_PATH="/tg/hook",
    )
    async with PersonaBridge(settings) as bridge:
        discord, telegram, web = bridge.enabled_adapters()
    assert discord.settings is settings.discord  # type: ignore[attr-defined]
    assert (settings.discord.edit_interval, settings.discord.shard_ids) == (0.25, (0, 2))
    assert settings.discord.first_message_delay == 0.5
    assert telegram.settings is settings.telegram  # type: ignore[attr-defined]
    assert telegram.settings.edit_interval(private=False) == 5.0  # type: ignore[attr-defined]
    assert telegram.settings.edit_interval(private=True) == 1.0  # type: ignore[attr-defined]
    paths = {r.resource.canonical for r in web.app.router.routes() if r.resource}  # type: ignore[attr-defined]
    assert {"/tg/hook", "/discord/interactions"} <= paths


# -- the purge of expired link codes and web sessions ------------------------------------


class PurgeWatch:
    """A MemoryStore fault hook that counts purge rounds and fails the ones it is told to
    (with a StoreError, the way a store that is briefly unreachable does)."""

    def __init__(self, failing: set[int]) -> None:
        self.rounds = 0
        self.failing = failing

    def __call__(self, operation: str) -> Exception | None:
        if operation != "purge_expired":
            return None
        self.rounds += 1
        if self.rounds in self.failing:
            return StoreUnavailable("the store is out to lunch")
        return None


async def wait_until(condition: Callable[[], bool], *, timeout: float = 20.0) -> None:
    """Poll until ``condition`` holds; fail after ``timeout`` seconds (generous: the
    machine is shared)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_expired_codes_and_sessions_are_purged_at_start_and_periodically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = PurgeWatch(failing={2})
    store = MemoryStore(fail=watch)
    settings = settings_for(tmp_path, STORE__PURGE_INTERVAL="0.05")
    caplog.set_level(logging.DEBUG, logger="bot.app")
    async with store:  # seed it: two long expired, one live for an hour
        account = await store.create_account("alice", "h", 1.0)
        await store.put_web_session("expired", account.id, 1.0)
        await store.put_link_code("expired", account.id, 1.0)
        await store.put_web_session("live", account.id, time.time() + 3600)
    async with PersonaBridge(settings, store=store):
        # round 1 at start purges, round 2 fails, round 3 and later go on regardless
        await wait_until(lambda: watch.rounds >= 4)
        assert await store.get_web_session("expired", 0.0) is None  # deleted, not refused
        assert await store.take_link_code("expired", 0.0) is None
        assert await store.get_web_session("live", time.time()) is not None
    rounds = watch.rounds
    await asyncio.sleep(0.2)  # four intervals: a task left running would purge again
    assert watch.rounds == rounds
    records = [r for r in caplog.records if r.name == "bot.app" and "purg" in r.getMessage()]
    assert records[0].levelno == logging.DEBUG
    assert records[0].getMessage() == "purged 2 expired link codes and web sessions"
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING and "out to lunch" in warnings[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in records if r is not warnings[0])


async def test_the_purge_task_waits_for_its_interval_and_stops_with_the_app(
    tmp_path: Path,
) -> None:
    """With the default hourly interval: one round at start, none more while the app
    runs, and leaving the app ends the task (no task of ours is left on the loop)."""
    watch = PurgeWatch(failing=set())
    ours = asyncio.all_tasks()
    async with PersonaBridge(settings_for(tmp_path), store=MemoryStore(fail=watch)) as bridge:
        assert bridge.settings.store.purge_interval == 3600.0
        await wait_until(lambda: watch.rounds == 1)
        await asyncio.sleep(0.1)
        assert watch.rounds == 1
        assert any(t.get_name() == "purge expired codes and sessions" for t in asyncio.all_tasks())
    assert asyncio.all_tasks() == ours


def test_a_purge_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STORE__PURGE_INTERVAL"):
        settings_for(tmp_path, STORE__PURGE_INTERVAL="0")


async def test_media_settings_and_transcription_are_wired(tmp_path: Path) -> None:
    from bot.backends.transcription import OpenAITranscriber

    async with PersonaBridge(settings_for(tmp_path)) as bridge:
        assert bridge.engine.media.transcriber is None  # off unless configured
        assert bridge.engine.media.settings.max_bytes == 20_000_000
    settings = settings_for(
        tmp_path,
        MEDIA__MAX_FILES="2",
        TRANSCRIPTION__BASE_URL="http://127.0.0.1:9/v1",
        TRANSCRIPTION__MODEL="small",
    )
    async with PersonaBridge(settings) as bridge:
        assert bridge.engine.media.settings.max_files == 2
        assert isinstance(bridge.engine.media.transcriber, OpenAITranscriber)


def test_a_media_limit_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MEDIA__MAX_BYTES"):
        settings_for(tmp_path, MEDIA__MAX_BYTES="0")


async def test_speech_settings_are_wired(tmp_path: Path) -> None:
    from bot.backends.speech import OpenAISpeech

    async with PersonaBridge(settings_for(tmp_path)) as bridge:
        assert not bridge.engine.speech.enabled  # off unless configured
    settings = settings_for(
        tmp_path,
        SPEECH__BASE_URL="http://127.0.0.1:9/v1",
        SPEECH__VOICE="nova",
        SPEECH__MAX_CHARS="300",
    )
    async with PersonaBridge(settings) as bridge:
        speech = bridge.engine.speech
        assert speech.enabled and isinstance(bridge._speech, OpenAISpeech)
        assert (speech.settings.voice, speech.settings.max_chars) == ("nova", 300)


def test_a_speech_format_must_be_one_the_server_makes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SPEECH__FORMAT"):
        settings_for(tmp_path, SPEECH__FORMAT="ogg")
