"""Discord (discord.py): slash commands, DMs and mentions, streamed replies, HTTP
interactions and sharding. ``bot.app`` builds it with :func:`build_discord_adapter`."""

from adapters.discord.adapter import DiscordAdapter, build_discord_adapter
from adapters.discord.errors import DiscordAPIError
from adapters.discord.interactions import INTERACTIONS_PATH
from adapters.discord.options import DiscordOptions

__all__ = [
    "INTERACTIONS_PATH",
    "DiscordAPIError",
    "DiscordAdapter",
    "DiscordOptions",
    "build_discord_adapter",
]
