"""Starting with Discord: a refused token stops the start in one line (no unclosed
session); an unreachable Discord is retried in the background while the web serves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.discord_server import FakeDiscord
from tests.support.platform_start import base_env, closed_port, run_cli, serving, wait_until


async def test_a_refused_token_stops_the_start_in_one_line(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.fail_next("GET", r"^/users/@me$", status=401)
        env = base_env(tmp_path) | {
            "PERSONABRIDGE_DISCORD__TOKEN": "not-a-token",
            "PERSONABRIDGE_DISCORD__API_BASE_URL": fake.api_url,
            "PERSONABRIDGE_DISCORD__GATEWAY_URL": fake.gateway_url,
            "PERSONABRIDGE_LOG_LEVEL": "WARNING",  # no voice warning either
        }
        status, err = await run_cli(env)
    assert status == 2
    assert err == "personabridge: PERSONABRIDGE_DISCORD__TOKEN was refused by Discord\n"


async def test_an_unreachable_discord_is_retried_while_the_web_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.app")
    port = closed_port()
    env = base_env(tmp_path) | {
        "PERSONABRIDGE_DISCORD__TOKEN": "bot-token",
        "PERSONABRIDGE_DISCORD__API_BASE_URL": f"http://127.0.0.1:{port}/api/v10",
        "PERSONABRIDGE_DISCORD__GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway",
    }
    async with serving(env) as app:
        status, body = await app.health()
        assert status == 200 and body["degraded"] == ["discord"]
        assert "cannot reach Discord" in body["adapters"]["discord"]["detail"]
        await wait_until(
            lambda: (
                sum("discord adapter not started" in r.getMessage() for r in caplog.records) >= 2
            )
        )
