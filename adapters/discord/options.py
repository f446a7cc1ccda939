"""``DiscordOptions``: the Discord adapter's settings beyond :class:`DiscordSettings`.

:class:`bot.config.DiscordSettings` holds what every deployment needs (token, public key,
API and gateway URLs); these are tuning knobs with safe defaults, as one frozen value.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """How the Discord adapter behaves; every field has a production default."""

    #: The least time between two edits of a streamed reply. Discord allows about five
    #: message edits per five seconds in a channel; one a second leaves room.
    edit_interval: float = 1.0
    #: How long a reply may gather text before its first message goes out. A reply that
    #: is complete within it goes out as one message rather than a message plus an edit
    #: one ``edit_interval`` later; a slower one shows its first words after this delay.
    first_message_delay: float = 0.3
    #: Sync the slash commands to these guilds only (shows at once; for development)
    #: instead of globally (may take a while to appear).
    command_guild_ids: tuple[int, ...] = ()
    #: Sync the commands at start; leave it on for one process only when many run.
    sync_commands: bool = True
    #: Any of the three shard settings selects ``AutoShardedClient``; without a count,
    #: Discord's recommended count is fetched (``GET /gateway/bot``).
    sharded: bool = False
    shard_count: int | None = None
    shard_ids: tuple[int, ...] = ()
    #: The pause between two shards' IDENTIFYs (Discord allows one per 5 s unless the
    #: bot has a higher ``max_concurrency``).
    shard_identify_interval: float = 5.0
    #: How long discord.py waits for the guilds after READY before it is ready.
    guild_ready_timeout: float = 2.0
    #: HTTP interactions whose signed timestamp is further than this from now are refused.
    signature_max_age: float = 300.0
    #: HTTP interactions: seconds a deferred command stays with the worker answering it
    #: before another may take it from the store's inbox (:mod:`bot.inbox`), and how
    #: often each worker looks.
    inbox_hold_seconds: float = 240.0
    inbox_sweep_seconds: float = 30.0
    #: How long replies in flight may take to finish when the adapter stops.
    shutdown_timeout: float = 10.0
    #: Whether the gateway client reconnects after a dropped connection.
    reconnect: bool = True

    def __post_init__(self) -> None:
        if self.edit_interval < 0:
            raise ConfigError("DISCORD__EDIT_INTERVAL must not be negative")
        if self.first_message_delay < 0:
            raise ConfigError("DISCORD__FIRST_MESSAGE_DELAY must not be negative")
        if self.shard_count is not None and self.shard_count < 1:
            raise ConfigError("DISCORD__SHARD_COUNT must be at least 1")
        if self.shard_ids and self.shard_count is None:
            raise ConfigError("DISCORD__SHARD_IDS needs DISCORD__SHARD_COUNT")
        if self.shard_count is not None and any(
            not 0 <= shard < self.shard_count for shard in self.shard_ids
        ):
            raise ConfigError("DISCORD__SHARD_IDS: every id must be below the shard count")

    @property
    def uses_shards(self) -> bool:
        return self.sharded or self.shard_count is not None or bool(self.shard_ids)
