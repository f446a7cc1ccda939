"""Fixtures for the Telegram tests: a store, and the fake Bot API server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.telegram_server import FakeBotApi


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        yield server
