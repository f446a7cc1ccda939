"""Where a gateway reply is shown: a channel (messages) or an interaction (slash
commands), as :class:`~adapters.discord.streaming.ReplySlots`; and the typing indicator
(for the shared policy, while the first words are awaited).

Both translate discord.py's ``HTTPException`` into our
:class:`~adapters.discord.errors.DiscordAPIError`. Rate limits (429) never get here:
discord.py waits them out and retries, per route bucket.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

from adapters.discord.buttons import ActionsView
from adapters.discord.errors import DiscordAPIError
from adapters.streaming import Typing
from bot.messages import Action

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _translated(call: Awaitable[T]) -> T:
    try:
        return await call
    except discord.HTTPException as exc:
        raise DiscordAPIError(exc.status, exc.text) from exc


class ChannelSlots:
    """A reply to a message: the first piece replies to it (without pinging its
    author), further pieces follow in the channel; each is edited in place."""

    def __init__(self, channel: discord.abc.Messageable, reply_to: discord.Message | None):
        self._channel = channel
        self._reply_to = reply_to
        self._messages: list[discord.Message] = []
        #: One nonce per piece, kept across our retries of its send: a send that went
        #: through but was answered 5xx is then returned by Discord, not posted twice.
        self._nonces: dict[int, int] = {}

    async def show(self, index: int, text: str) -> None:
        if index < len(self._messages):
            self._messages[index] = await _translated(self._messages[index].edit(content=text))
            return
        reference = None
        if index == 0 and self._reply_to is not None:
            # A reply to a message deleted meanwhile is sent as a plain message.
            reference = self._reply_to.to_reference(fail_if_not_exists=False)
        nonce = self._nonces.setdefault(index, secrets.randbits(64))
        if reference is None:
            sent = await _translated(self._channel.send(text, nonce=nonce))
        else:
            sent = await _translated(self._channel.send(text, reference=reference, nonce=nonce))
        del self._nonces[index]  # posted: a later piece at this index is a new message
        if sent.content.strip() != text.strip():  # Discord trims what it stores
            # Discord returned the message an earlier try of this piece made (same
            # nonce): it holds that try's text, a draft perhaps.
            sent = await _translated(sent.edit(content=text))
        self._messages.append(sent)

    async def remove(self, index: int) -> None:
        await _translated(self._messages.pop(index).delete())

    async def offer(self, index: int, actions: tuple[Action, ...]) -> None:
        message = self._messages[index]
        self._messages[index] = await _translated(message.edit(view=ActionsView(actions)))


class InteractionSlots:
    """The reply to a deferred slash command: the first piece replaces the "thinking"
    message (``@original``); further pieces are follow-ups."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool):
        self._interaction = interaction
        self._ephemeral = ephemeral
        self._followups: list[discord.WebhookMessage] = []

    async def show(self, index: int, text: str) -> None:
        if index == 0:
            await _translated(self._interaction.edit_original_response(content=text))
        elif index <= len(self._followups):
            message = self._followups[index - 1]
            self._followups[index - 1] = await _translated(message.edit(content=text))
        else:
            followup = self._interaction.followup.send(text, wait=True, ephemeral=self._ephemeral)
            self._followups.append(await _translated(followup))

    async def remove(self, index: int) -> None:
        await _translated(self._followups.pop(index - 1).delete())

    async def offer(self, index: int, actions: tuple[Action, ...]) -> None:
        view = ActionsView(actions)
        if index == 0:
            await _translated(self._interaction.edit_original_response(view=view))
        else:
            message = self._followups[index - 1]
            self._followups[index - 1] = await _translated(message.edit(view=view))


def typing_once(channel: discord.abc.Messageable) -> Typing:
    """Show "typing…" once in ``channel`` when still ``wanted()`` (the shared policy's
    hook: it calls this from the first-message delay on, until the first words show).
    A failed trigger is only logged."""

    async def typing(wanted: Callable[[], bool]) -> None:
        if not wanted():
            return
        try:
            await channel.typing()
        except discord.HTTPException as exc:
            log.debug("discord: typing failed (HTTP %s)", exc.status)

    return typing
