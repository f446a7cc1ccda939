"""``DiscordSettings``: the ``DISCORD__*`` section of the settings, declared here,
beside the code that reads it; :mod:`bot.app_settings` composes it into the application's
settings. Besides the connection (token, public key, API and gateway URLs) it holds the
tuning knobs, each with a production default.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from bot.config import SECTION_CONFIG, HttpUrl, IntList, PositiveFloat, WsUrl


class DiscordSettings(BaseModel):
    """How the Discord adapter connects and behaves. The gateway client runs when
    ``token`` is set; HTTP interactions are served when ``public_key`` is set."""

    model_config = SECTION_CONFIG

    token: SecretStr | None = None
    #: The application's Ed25519 public key (hex), for HTTP interactions.
    public_key: str | None = None
    api_base_url: HttpUrl = "https://discord.com/api/v10"
    gateway_url: WsUrl = "wss://gateway.discord.gg"
    #: The least time between two edits of a streamed reply. Discord allows about five
    #: message edits per five seconds in a channel; one a second leaves room.
    edit_interval: float = Field(default=1.0, ge=0)
    #: How long a reply may gather text before its first message goes out. A reply that
    #: is complete within it goes out as one message rather than a message plus an edit
    #: one ``edit_interval`` later; a slower one shows its first words after this delay.
    first_message_delay: float = Field(default=0.3, ge=0)
    #: Sync the slash commands to these guilds only (shows at once; for development)
    #: instead of globally (may take a while to appear).
    command_guild_ids: IntList = ()
    #: Sync the commands at start; leave it on for one process only when many run.
    sync_commands: bool = True
    #: Any of the three shard settings selects ``AutoShardedClient``; without a count,
    #: Discord's recommended count is fetched (``GET /gateway/bot``).
    sharded: bool = False
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: IntList = ()
    #: The pause between two shards' IDENTIFYs (Discord allows one per 5 s unless the
    #: bot has a higher ``max_concurrency``).
    shard_identify_interval: float = Field(default=5.0, ge=0)
    #: How long discord.py waits for the guilds after READY before it is ready.
    guild_ready_timeout: float = Field(default=2.0, ge=0)
    #: HTTP interactions whose signed timestamp is further than this from now are refused.
    signature_max_age: float = Field(default=300.0, gt=0)
    #: How long replies in flight may take to finish when the adapter stops.
    shutdown_timeout: float = Field(default=10.0, ge=0)
    #: HTTP interactions: a deferred command is held by its worker this long (seconds);
    #: past it, unanswered (the worker died), another worker answers it (bot.inbox).
    inbox_hold_seconds: PositiveFloat = 240.0
    #: How often each worker looks for such commands (and once at start).
    inbox_sweep_seconds: PositiveFloat = 30.0

    @field_validator("shard_ids")
    @classmethod
    def _ids_within_count(cls, ids: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        if not ids:
            return ids
        if "shard_count" not in info.data:
            return ids  # the count itself is invalid, and reported
        count = info.data["shard_count"]
        if count is None:
            raise ValueError("needs DISCORD__SHARD_COUNT as well")
        if any(not 0 <= shard < count for shard in ids):
            raise ValueError("every id must be below the shard count")
        return ids

    @property
    def uses_shards(self) -> bool:
        return self.sharded or self.shard_count is not None or bool(self.shard_ids)
