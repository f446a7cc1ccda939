"""Fixtures for the Discord tests: a fake Discord on loopback and an in-memory store."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import pytest

with warnings.catch_warnings():
    # discord.py imports the standard library's audioop (for voice, unused here), which
    # warns on import since Python 3.11. Only that warning is silenced, and only while
    # discord.py is first imported; every other warning still fails the run.
    warnings.filterwarnings(
        "ignore", message="'audioop' is deprecated", category=DeprecationWarning
    )
    import discord  # noqa: F401

from tests.support.discord_server import FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server
