"""The fuzz tests of the platform boundaries drive the real adapters through the
harnesses in ``tests/support`` (``telegram_harness``, ``discord_harness``)."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # As in tests/discord/conftest.py: discord.py imports the standard library's
    # audioop (voice, unused here), which warns on import since Python 3.11.
    warnings.filterwarnings(
        "ignore", message="'audioop' is deprecated", category=DeprecationWarning
    )
    import discord  # noqa: F401
