"""Discord attachments as files for the engine: fetched from their URL by discord.py
(``Attachment.read``) only when the engine takes them, and never past the limit."""

from __future__ import annotations

import discord

from bot.errors import MediaRefused
from bot.messages import IncomingFile


def attachment_files(attachments: object) -> tuple[IncomingFile, ...]:
    """A message's (or a slash command's) attachments as files for the engine."""
    if not isinstance(attachments, list | tuple):
        return ()
    return tuple(
        attachment_file(item) for item in attachments if isinstance(item, discord.Attachment)
    )


def attachment_file(attachment: discord.Attachment) -> IncomingFile:
    async def fetch(max_bytes: int) -> bytes:
        if attachment.size > max_bytes:
            raise MediaRefused.too_large(attachment.filename, max_bytes)
        return await attachment.read()

    return IncomingFile(
        attachment.filename,
        fetch,
        attachment.content_type or "",
        attachment.size if isinstance(attachment.size, int) else 0,
        attachment.is_voice_message(),
    )
