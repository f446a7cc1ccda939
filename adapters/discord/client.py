"""The discord.py gateway client: built once, run on the shared event loop.

``Client`` (or ``AutoShardedClient`` when shard options are given) with intents that
need no privileged Message Content, and ``AllowedMentions.none()`` so that no text the
bot sends (model output included) pings @everyone, @here, roles or users: discord.py
puts ``{"parse": []}`` on every send, edit, follow-up and interaction response.
:class:`Gateway` logs in, lets the caller sync commands, and keeps ``client.connect``
in a task of its own; ``client.run`` would want the event loop to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Self

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.settings import DiscordSettings
from bot.config import shown_url
from bot.errors import ConfigError, PlatformUnreachable

log = logging.getLogger(__name__)

DISCORD_API_URL = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg"


def point_at(settings: DiscordSettings) -> None:
    """Send discord.py's REST calls and gateway connection where ``settings`` say
    (an emulator, a test server), when that is not Discord itself.

    discord.py keeps both in class attributes, so this is process-wide: it is the one
    place that touches them, and it leaves them alone for Discord's own URLs.
    """
    api = settings.api_base_url.rstrip("/")
    if api != DISCORD_API_URL:
        Route.BASE = api
    gateway = settings.gateway_url.rstrip("/")
    if gateway != DISCORD_GATEWAY_URL:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def intents() -> discord.Intents:
    """Guilds (for channels and threads), guild and DM messages; not the privileged
    Message Content or Members intents."""
    return discord.Intents(guilds=True, guild_messages=True, dm_messages=True)


class ShardedClient(discord.AutoShardedClient):
    """``AutoShardedClient`` with a configurable pause between shard IDENTIFYs.

    discord.py waits 5 s before each shard after the first (Discord's identify rate
    for a concurrency of 1); bots granted a higher concurrency, and tests, pause less.
    """

    def __init__(self, *, identify_interval: float, **options: Any):
        super().__init__(**options)
        self._identify_interval = identify_interval

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial and self._identify_interval > 0:
            await asyncio.sleep(self._identify_interval)


def create_client(options: DiscordSettings) -> discord.Client:
    """A client configured for PersonaBridge, sharded when the settings say so."""
    # PersonaBridge never joins voice: discord.py's warning that voice is unsupported
    # (its optional voice libraries are not installed) would only puzzle the operator.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    common: dict[str, Any] = {
        "intents": intents(),
        "allowed_mentions": discord.AllowedMentions.none(),
        "guild_ready_timeout": options.guild_ready_timeout,
        "chunk_guilds_at_startup": False,
    }
    client: discord.Client
    if options.uses_shards:
        if options.shard_ids:
            common["shard_ids"] = list(options.shard_ids)
        # With no count, discord.py asks Discord (GET /gateway/bot) how many to run.
        client = ShardedClient(
            identify_interval=options.shard_identify_interval,
            shard_count=options.shard_count,
            **common,
        )
    else:
        client = discord.Client(**common)
    survive_unparsable_events(client)
    return client


def survive_unparsable_events(client: discord.Client) -> None:
    """Skip a gateway event discord.py cannot parse instead of losing the connection.

    discord.py parses each dispatch inside its receive loop: an event of a shape it
    does not expect (a MESSAGE_CREATE without ``content``, say) raises there, the
    exception leaves ``Client.connect`` (it is no connection error, so ``reconnect``
    does not apply) and the bot is offline until restarted. Reconnecting would cost an
    IDENTIFY (1,000 a day) per bad event; skipping the one event costs that event.
    The parsers live in the connection state's ``parsers`` table, which discord.py 2.x
    builds once per client; ``tests/fuzz/test_discord_fuzz.py`` fails if that changes.
    """
    parsers: dict[str, Callable[[Any], Any]] = client._connection.parsers

    def guarded(event: str, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def parse_or_skip(data: Any) -> Any:
            try:
                return parse(data)
            except Exception as exc:
                # the type only: the exception's text may quote the event's content
                log.warning(
                    "discord: skipped a %s event it could not read (%s)", event, type(exc).__name__
                )
                log.debug("discord: the unreadable %s event", event, exc_info=exc)
                return None

        return parse_or_skip

    for event, parse in list(parsers.items()):
        parsers[event] = guarded(event, parse)


class Gateway:
    """Owns a logged-in client with a running gateway connection.

    Entering logs in (checking the token), awaits ``on_login`` (command sync), then
    connects in a background task; leaving closes the client and awaits that task.
    """

    def __init__(
        self,
        client: discord.Client,
        token: str,
        *,
        reconnect: bool = True,
        on_login: Callable[[], Awaitable[None]] | None = None,
    ):
        self.client = client
        self._token = token
        self._reconnect = reconnect
        self._on_login = on_login
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        try:
            await self.client.login(self._token)
            if self._on_login is not None:
                await self._on_login()
        except discord.LoginFailure as exc:
            await self.client.close()
            raise ConfigError("PERSONABRIDGE_DISCORD__TOKEN was refused by Discord") from exc
        except (OSError, aiohttp.ClientError, TimeoutError, discord.DiscordServerError) as exc:
            await self.client.close()
            raise PlatformUnreachable(
                f"cannot reach Discord at {shown_url(Route.BASE)}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            await self.client.close()
            raise
        self._task = asyncio.create_task(self._connect(), name="discord-gateway")
        return self

    async def _connect(self) -> None:
        try:
            await self.client.connect(reconnect=self._reconnect)
        except discord.PrivilegedIntentsRequired:
            log.error("discord: the gateway refused the intents; check the bot's settings")
        except (discord.ConnectionClosed, discord.GatewayNotFound, OSError) as exc:
            log.error("discord: the gateway connection ended: %s", exc)
        except Exception:
            # The edge of a background task: nothing above it would see the error.
            log.exception("discord: the gateway client failed")
        else:
            if not self.client.is_closed():
                log.warning("discord: the gateway connection ended")

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=5.0)
            except TimeoutError:
                log.warning("discord: the gateway task did not stop; cancelled")
                with contextlib.suppress(asyncio.CancelledError):
                    await task
