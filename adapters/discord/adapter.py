"""``DiscordAdapter``: the gateway client and the HTTP interactions route, as one
adapter that ``bot.app`` starts and stops.

With a token, entering logs in, syncs the slash commands and connects to the gateway
(DMs, mentions, slash commands). With a public key, :meth:`DiscordAdapter.web_routes`
gives the route the web adapter serves for HTTP interactions; entering opens the
session its follow-ups use. Either may be set alone: web workers that serve only HTTP
interactions need no token. Leaving lets replies in flight finish, then closes all.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import AsyncExitStack
from typing import Self

import discord
from discord import app_commands
from pydantic import SecretStr

from adapters.discord.buttons import pressed_text
from adapters.discord.client import Gateway, create_client, point_at
from adapters.discord.commands import (
    EPHEMERAL,
    PLATFORM,
    incoming_from_interaction,
    install_commands,
    sync_commands,
)
from adapters.discord.errors import DiscordAPIError
from adapters.discord.interactions import InteractionEndpoint
from adapters.discord.messages import MessageHandler
from adapters.discord.settings import DiscordSettings
from adapters.discord.streaming import ENGINE_FAILED, deliver
from adapters.discord.targets import InteractionSlots
from adapters.discord.tasks import TaskTracker
from adapters.discord.voice import InteractionVoice, follow_with_voice
from bot.adapter import WebRoute
from bot.engine import Engine
from bot.messages import Identity, IncomingFile
from bot.store.base import EventStore

log = logging.getLogger(__name__)

STALE_COMMAND = (
    "That command has changed since Discord last showed it to you. "
    "Type / again to pick the current one, or send /help."
)
STALE_COMMAND_ERRORS = (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)


class CommandTree(app_commands.CommandTree[discord.Client]):
    """The slash command tree, with the one error handler for slash commands."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        name = interaction.command.name if interaction.command else "?"
        if isinstance(error, STALE_COMMAND_ERRORS):
            # Discord still offers a command or option this version no longer has (the
            # commands have not been synced since): the user's mistake is ours to explain.
            log.warning("discord: an out-of-date /%s came in (%s)", name, type(error).__name__)
            answer = STALE_COMMAND
        else:
            log.error("discord: /%s failed", name, exc_info=error)
            answer = ENGINE_FAILED
        try:
            if interaction.response.is_done():
                await interaction.followup.send(answer, ephemeral=True)
            else:
                await interaction.response.send_message(answer, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("discord: could not report the failure (HTTP %s)", exc.status)


class DiscordAdapter:
    """Discord for PersonaBridge. ``client`` is the gateway client while entered
    (None without a token)."""

    name = "discord"

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        *,
        events: EventStore | None = None,
        reconnect: bool = True,
    ):
        """``events`` keeps the interactions endpoint's inbox and interaction ids: needed
        with a public key (HTTP interactions), unused by the gateway alone."""
        if settings.public_key and events is None:
            raise ValueError("the Discord interactions endpoint needs an event store (events=)")
        self._engine = engine
        self._settings = settings
        #: Whether the gateway client reconnects after a dropped connection.
        self._reconnect = reconnect
        self._tasks = TaskTracker()
        self._endpoint = (
            InteractionEndpoint(engine, settings, self._tasks, events=events)
            if settings.public_key and events is not None
            else None
        )
        self._stack: AsyncExitStack | None = None
        self.client: discord.Client | None = None
        self.tree: CommandTree | None = None

    @property
    def settings(self) -> DiscordSettings:
        return self._settings

    @property
    def replies_in_flight(self) -> int:
        """How many replies are being written right now."""
        return len(self._tasks)

    def web_routes(self) -> list[WebRoute]:
        """The HTTP interactions route (when a public key is set), for the web adapter."""
        return [self._endpoint.route()] if self._endpoint is not None else []

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            if self._endpoint is not None:
                await stack.enter_async_context(self._endpoint)
            if self._settings.token is not None:
                await stack.enter_async_context(self._gateway(self._settings.token))
            # Runs first on the way out: replies in flight still have their clients.
            stack.push_async_callback(self._tasks.drain, self._settings.shutdown_timeout)
            if self.client is not None:  # only the gateway client can write DMs
                self._engine.notices.register(PLATFORM, self.send_notice)
                stack.callback(self._engine.notices.unregister, PLATFORM)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self.client = None
        self.tree = None

    def _gateway(self, token: SecretStr) -> Gateway:
        point_at(self._settings)
        client = create_client(self._settings)
        tree = CommandTree(client)
        install_commands(tree, self._engine, self._run_command)
        client.event(MessageHandler(client, self._engine, self._settings, self._tasks).on_message)
        client.event(self.on_interaction)
        self.client, self.tree = client, tree

        async def sync() -> None:
            if self._settings.sync_commands:
                await sync_commands(tree, self._settings.command_guild_ids)

        return Gateway(
            client,
            token.get_secret_value(),
            reconnect=self._reconnect,
            on_login=sync,
        )

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A pressed button of one of our replies: that person's command (slash
        commands go to the command tree, not here)."""
        if interaction.type is not discord.InteractionType.component:
            return
        data = interaction.data
        text = pressed_text(data.get("custom_id") if data is not None else None)
        if text is not None:
            await self._run_command(interaction, "link" if text.startswith("/link") else "", text)

    async def send_notice(self, identity: Identity, text: str) -> None:
        """Tell a person about their account in a DM."""
        client = self.client
        if client is None:
            raise RuntimeError("the Discord gateway client is not running")
        try:
            user = client.get_user(int(identity.user_id)) or await client.fetch_user(
                int(identity.user_id)
            )
            await user.send(text)
        except discord.HTTPException as exc:
            raise DiscordAPIError(exc.status, exc.text) from exc

    async def _run_command(
        self,
        interaction: discord.Interaction,
        name: str,
        text: str,
        files: tuple[IncomingFile, ...] = (),
        /,
    ) -> None:
        """Answer one slash command: defer at once (Discord allows 3 s), then stream
        the reply into the deferred message and follow-ups."""
        async with self._tasks.track():
            incoming = dataclasses.replace(
                incoming_from_interaction(interaction, text), files=files
            )
            ephemeral = name in EPHEMERAL and not incoming.private
            await interaction.response.defer(thinking=True, ephemeral=ephemeral)
            slots = InteractionSlots(interaction, ephemeral=ephemeral)
            try:
                done = await deliver(self._engine, incoming, slots, self._settings)
                voice = InteractionVoice(interaction, ephemeral=ephemeral)
                await follow_with_voice(self._engine.speech, incoming, done, voice)
            except DiscordAPIError as exc:
                log.warning("discord: could not show the reply to /%s (HTTP %s)", name, exc.status)


def build_discord_adapter(
    engine: Engine,
    settings: DiscordSettings,
    *,
    events: EventStore | None = None,
    reconnect: bool = True,
) -> DiscordAdapter:
    """The Discord adapter for ``bot.app``: enter it (before the web adapter, so the
    interactions route is ready when the server starts) and pass
    :meth:`DiscordAdapter.web_routes` to the web adapter's ``extra_routes``."""
    return DiscordAdapter(engine, settings, events=events, reconnect=reconnect)
