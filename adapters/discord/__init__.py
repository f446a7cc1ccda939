"""Discord (discord.py): slash commands, DMs and mentions, streamed replies, HTTP
interactions and sharding. ``bot.app`` builds it with :func:`build_discord_adapter`.

The names below load on first use, so that reading the settings
(:mod:`adapters.discord.settings`, imported by every command) does not import discord.py.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter, build_discord_adapter
    from adapters.discord.errors import DiscordAPIError
    from adapters.discord.interactions import INTERACTIONS_PATH
    from adapters.discord.settings import DiscordSettings

_HOMES = {
    "DiscordAdapter": "adapters.discord.adapter",
    "build_discord_adapter": "adapters.discord.adapter",
    "DiscordAPIError": "adapters.discord.errors",
    "INTERACTIONS_PATH": "adapters.discord.interactions",
    "DiscordSettings": "adapters.discord.settings",
}

__all__ = [
    "INTERACTIONS_PATH",
    "DiscordAPIError",
    "DiscordAdapter",
    "DiscordSettings",
    "build_discord_adapter",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
