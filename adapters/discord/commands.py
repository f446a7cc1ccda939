"""The slash commands: the engine's command set as Discord application commands.

Each command becomes the text the engine already understands (``/chat message:hi`` →
``hi``; ``/persona id:ada`` → ``/persona ada``), so commands behave the same on every
platform. The same mapping serves the gateway (:func:`install_commands`, a discord.py
``CommandTree``) and HTTP interactions (:func:`command_text` on the raw payload).
Answers about the user's own account stay ephemeral in guilds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Literal, Protocol

import discord
from discord import app_commands

from adapters.discord.files import attachment_file
from bot.commands import COMMANDS
from bot.engine import Engine
from bot.messages import Incoming, IncomingFile, too_long_refusal

log = logging.getLogger(__name__)

PLATFORM = "discord"
#: The longest text passed on to the persona: Discord's own limit on a message (with
#: Nitro). A longer one (only a forged event has it: Discord enforces the limit, and
#: ``/chat``'s ``max_length``) is answered with :data:`TOO_LONG_REPLY`.
MAX_INPUT_CHARS = 4000
TOO_LONG_REPLY = too_long_refusal(MAX_INPUT_CHARS)
#: Commands whose answer only the caller sees (in guilds; DMs are private anyway).
EPHEMERAL = frozenset(
    {"help", "link", "unlink", "whoami", "forget", "persona", "personas", "reset"}
)
#: Discord shows at most 25 autocomplete choices.
MAX_CHOICES = 25
#: Every slash command (the tree registers the same set).
SLASH_COMMANDS = (
    "chat",
    "persona",
    "personas",
    "reset",
    "retry",
    "link",
    "unlink",
    "whoami",
    "voice",
    "forget",
    "help",
)
_DESCRIPTIONS = {c.name: c.description for c in COMMANDS}


class RunCommand(Protocol):
    """Runs one command: the interaction, the command's name, the text for the engine,
    and the files sent with it (``/chat``'s attachment)."""

    def __call__(
        self,
        interaction: discord.Interaction,
        name: str,
        text: str,
        files: tuple[IncomingFile, ...] = (),
        /,
    ) -> Awaitable[None]: ...


OptionValue = str | int | float | bool


def command_text(name: str, options: Mapping[str, OptionValue]) -> str:
    """What the engine is sent for slash command ``name`` with its ``options``."""
    if name == "chat":
        return str(options.get("message", "")).strip()
    if name == "forget":
        return "/forget confirm" if options.get("confirm") else "/forget"
    argument = options.get("id", options.get("code", options.get("state", "")))
    return f"/{name} {argument}".strip()


def persona_choices(engine: Engine, current: str) -> list[tuple[str, str]]:
    """``(label, persona id)`` for the personas whose id or name contains ``current``."""
    needle = current.strip().casefold()
    found = [
        (f"{persona.name} ({persona.id})"[:100], persona.id)
        for persona in engine.personas
        if needle in persona.id.casefold() or needle in persona.name.casefold()
    ]
    return found[:MAX_CHOICES]


def description(name: str) -> str:
    text = _DESCRIPTIONS.get(name, "chat with your persona")
    return (text[:1].upper() + text[1:])[:100]


def incoming_from_interaction(interaction: discord.Interaction, text: str) -> Incoming:
    """The engine's view of a slash command. A DM with the bot is private (one history
    across platforms); a guild channel, thread or a DM between two users is not."""
    private = (
        interaction.guild_id is None
        and isinstance(interaction.channel, discord.DMChannel)
        and not interaction.context.private_channel
    )
    user = interaction.user
    return Incoming(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=display_name(user),
        chat_id=str(interaction.channel_id or user.id),
        private=private,
        text=text,
        addressed=True,
    )


def display_name(user: discord.abc.User) -> str:
    """The name a person shows, or their id when the event gave none."""
    name = user.display_name
    return name if isinstance(name, str) and name.strip() else f"user {user.id}"


def install_commands(
    tree: app_commands.CommandTree[discord.Client], engine: Engine, run: RunCommand
) -> None:
    """Add the command set to ``tree``; each invocation calls ``run``, unless its text
    is longer than :data:`MAX_INPUT_CHARS` (then it is answered :data:`TOO_LONG_REPLY`:
    discord.py leaves an option's ``max_length`` to Discord, and a forged event may
    carry any length)."""
    run = _within_limit(run)

    @tree.command(name="chat", description="Say something to your persona")
    @app_commands.describe(
        message="What you want to say",
        attachment="An image, a voice note or a text file to go with it",
    )
    async def chat(
        interaction: discord.Interaction,
        message: app_commands.Range[str, 1, MAX_INPUT_CHARS],
        attachment: discord.Attachment | None = None,
    ) -> None:
        files = (attachment_file(attachment),) if attachment is not None else ()
        await run(interaction, "chat", command_text("chat", {"message": message}), files)

    @tree.command(name="persona", description=description("persona"))
    @app_commands.rename(persona_id="id")
    @app_commands.describe(persona_id="The persona to switch to (leave empty to see yours)")
    async def persona(interaction: discord.Interaction, persona_id: str | None = None) -> None:
        await run(interaction, "persona", command_text("persona", {"id": persona_id or ""}))

    @persona.autocomplete("persona_id")
    async def persona_ids(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=label, value=value)
            for label, value in persona_choices(engine, current)
        ]

    @tree.command(name="link", description=description("link"))
    @app_commands.describe(
        code="The code from your account page, like ABCD-EFGH (then: confirm, confirm move, cancel)"
    )
    async def link(interaction: discord.Interaction, code: app_commands.Range[str, 1, 32]) -> None:
        await run(interaction, "link", command_text("link", {"code": code}))

    @tree.command(name="forget", description=description("forget"))
    @app_commands.describe(confirm="True to really delete everything (after asking first)")
    async def forget(interaction: discord.Interaction, confirm: bool = False) -> None:
        await run(interaction, "forget", command_text("forget", {"confirm": confirm}))

    @tree.command(name="voice", description=description("voice"))
    @app_commands.describe(state="on: replies also come as voice messages; off: text only")
    async def voice(
        interaction: discord.Interaction, state: Literal["on", "off"] | None = None
    ) -> None:
        await run(interaction, "voice", command_text("voice", {"state": state or ""}))

    for name in ("reset", "personas", "retry", "unlink", "whoami", "help"):
        tree.add_command(_plain_command(name, run))


def _within_limit(run: RunCommand) -> RunCommand:
    async def checked(
        interaction: discord.Interaction,
        name: str,
        text: str,
        files: tuple[IncomingFile, ...] = (),
        /,
    ) -> None:
        if len(text) > MAX_INPUT_CHARS:
            await interaction.response.send_message(TOO_LONG_REPLY, ephemeral=True)
            return
        await run(interaction, name, text, files)

    return checked


def _plain_command(
    name: str, run: RunCommand
) -> app_commands.Command[app_commands.Group, ..., None]:
    async def callback(interaction: discord.Interaction) -> None:
        await run(interaction, name, command_text(name, {}))

    return app_commands.Command(name=name, description=description(name), callback=callback)


async def sync_commands(
    tree: app_commands.CommandTree[discord.Client], guild_ids: Sequence[int]
) -> None:
    """Register the commands with Discord: globally (may take a while to show), or in
    the given guilds (instant; for development)."""
    if not guild_ids:
        synced = await tree.sync()
        log.info("discord: synced %d global commands", len(synced))
        return
    for guild_id in guild_ids:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        synced = await tree.sync(guild=guild)
        log.info("discord: synced %d commands to guild %s", len(synced), guild_id)
