"""Discord attachments as files for the engine: fetched from their URL (by discord.py's
``Attachment.read`` on the gateway, by our own session for HTTP interactions) only when
the engine takes them, and never past the limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
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


def resolved_file(session: aiohttp.ClientSession, attachment: Mapping[str, Any]) -> IncomingFile:
    """An attachment of an HTTP interaction (``data.resolved.attachments[id]``)."""
    url = str(attachment["url"])
    if not url.startswith(("https://", "http://")):
        raise ValueError("an attachment URL must be http(s)")
    filename = str(attachment.get("filename") or "file")
    size = attachment.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0

    async def fetch(max_bytes: int) -> bytes:
        if size > max_bytes:
            raise MediaRefused.too_large(filename, max_bytes)
        async with session.get(url) as response:
            response.raise_for_status()
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise MediaRefused.too_large(filename, max_bytes)
            return bytes(data)

    declared = attachment.get("content_type")
    return IncomingFile(filename, fetch, declared if isinstance(declared, str) else "", size)
