"""Starting with Telegram: a refused token stops the start in one line; an unreachable
Bot API is retried in the background while the web page serves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support.platform_start import base_env, closed_port, run_cli, serving, wait_until
from tests.support.telegram_server import FakeBotApi


async def test_a_refused_token_stops_the_start_in_one_line(tmp_path: Path) -> None:
    async with FakeBotApi() as fake:
        env = base_env(tmp_path) | {
            "PERSONABRIDGE_TELEGRAM__TOKEN": "1000:not-the-token",
            "PERSONABRIDGE_TELEGRAM__API_BASE_URL": fake.url,
            "PERSONABRIDGE_LOG_LEVEL": "WARNING",
        }
        status, err = await run_cli(env)
    assert status == 2
    assert err == "personabridge: PERSONABRIDGE_TELEGRAM__TOKEN: Telegram refused it\n"


async def test_an_unreachable_bot_api_is_retried_while_the_web_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.app")
    port = closed_port()
    env = base_env(tmp_path) | {
        "PERSONABRIDGE_TELEGRAM__TOKEN": FakeBotApi.token,
        "PERSONABRIDGE_TELEGRAM__API_BASE_URL": f"http://127.0.0.1:{port}",
    }

    def attempts() -> int:
        return sum("telegram adapter not started" in r.getMessage() for r in caplog.records)

    async with serving(env) as app:
        status, body = await app.health()
        assert status == 200, "the web page serves: a load balancer keeps the process"
        assert body["status"] == "degraded" and body["degraded"] == ["telegram"]
        assert body["adapters"]["web"] == {"state": "ok"}
        assert body["adapters"]["telegram"]["state"] == "degraded"
        assert "cannot reach Telegram" in body["adapters"]["telegram"]["detail"]
        await wait_until(lambda: attempts() >= 3)  # tried again, once logged per attempt
        assert all(r.levelno == logging.WARNING for r in caplog.records)
        async with FakeBotApi(port=port) as fake:  # Telegram is back
            await wait_until(lambda: app.bridge.health.degraded == [])
            status, body = await app.health()
            assert (status, body["status"]) == (200, "ok")
            assert body["adapters"]["telegram"] == {"state": "ok"}
            assert any(c.method == "getMe" for c in fake.calls)
