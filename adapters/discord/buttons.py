"""Buttons under a reply (:class:`~bot.messages.Action`), and pressing them.

A button's ``custom_id`` is :data:`PREFIX` + the command it sends (``pb:/link
confirm``); pressing it is a MESSAGE_COMPONENT interaction from whoever pressed it,
answered like that person's slash command with that text (:func:`pressed_text`). The
gateway client gets it through ``on_interaction``; HTTP interactions as type 3. The
reply's text always names the typed form too, for clients that show no buttons.

On the gateway, discord.py takes buttons only inside a ``View``: :class:`ActionsView`
holds them and lets its ``interaction_check`` refuse every press, so that discord.py's
view machinery never answers one; ``on_interaction`` does, in every process alike (a
press may reach another worker than the one that sent the buttons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

from bot.messages import Action

PREFIX = "pb:"
#: Discord's limits: 100 characters of custom_id, 80 of label, 5 buttons per row.
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
PER_ROW = 5
BUTTON, ACTION_ROW, PRIMARY, SECONDARY = 2, 1, 1, 2
#: How long discord.py keeps a sent view (only so that it lets go of it: presses are
#: answered by on_interaction whatever it holds).
VIEW_TIMEOUT = 900.0


def usable(actions: Sequence[Action]) -> list[Action]:
    """The actions that fit a button, at most one row's worth."""
    fitting = [a for a in actions if len(PREFIX + a.command) <= MAX_CUSTOM_ID]
    return fitting[:PER_ROW]


def pressed_text(custom_id: object) -> str | None:
    """The command a pressed button of ours sends; None for anything else."""
    if not isinstance(custom_id, str) or not custom_id.startswith(PREFIX):
        return None
    text = custom_id[len(PREFIX) :]
    return text if text.startswith("/") else None


def components(actions: Sequence[Action]) -> list[dict[str, Any]]:
    """The raw message components (one action row) for a REST payload."""
    buttons = [
        {
            "type": BUTTON,
            "style": PRIMARY if n == 0 else SECONDARY,
            "label": action.label[:MAX_LABEL],
            "custom_id": PREFIX + action.command,
        }
        for n, action in enumerate(usable(actions))
    ]
    return [{"type": ACTION_ROW, "components": buttons}] if buttons else []


class ActionsView(discord.ui.View):
    """The buttons for discord.py (see the module doc)."""

    def __init__(self, actions: Sequence[Action]):
        super().__init__(timeout=VIEW_TIMEOUT)
        for n, action in enumerate(usable(actions)):
            style = discord.ButtonStyle.primary if n == 0 else discord.ButtonStyle.secondary
            self.add_item(
                discord.ui.Button(
                    label=action.label[:MAX_LABEL], custom_id=PREFIX + action.command, style=style
                )
            )

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return False  # answered by the adapter's on_interaction
