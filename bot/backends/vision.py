"""The images of the message being answered, as OpenAI ``image_url`` content parts.

Only the current message's images are sent (as base64 data URLs of the normalised
image, see :mod:`bot.media`): earlier images were never stored and reach the model as
their placeholder line in the text. The parts join the last user message of a prompt
made by :func:`bot.backends.prompt.chat_messages`, after its text.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from bot.backends.prompt import ChatMessage
from bot.messages import AttachmentKind, Turn, turn_text


def image_parts(message: Turn) -> list[dict[str, Any]]:
    """One ``image_url`` part per image of ``message`` that still has its bytes."""
    parts: list[dict[str, Any]] = []
    for item in message.attachments:
        if item.kind is AttachmentKind.IMAGE and item.image:
            # the normalised image is a JPEG or PNG whatever was sent
            media = "image/png" if item.image.startswith(b"\x89PNG") else "image/jpeg"
            data = base64.b64encode(item.image).decode("ascii")
            parts.append({"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}})
    return parts


def with_images(messages: Sequence[ChatMessage], message: Turn) -> list[dict[str, Any]]:
    """``messages`` with ``message``'s images added to the user message that carries its
    text (the last one that ends with it: lorebook entries may be inserted after it)."""
    result: list[dict[str, Any]] = [dict(item) for item in messages]
    parts = image_parts(message)
    if not parts:
        return result
    users = [item for item in result if item["role"] == "user"]
    text = turn_text(message)
    carrier = next((m for m in reversed(users) if m["content"].endswith(text)), None)
    carrier = carrier or (users[-1] if users else None)
    if carrier is not None:
        carrier["content"] = [{"type": "text", "text": carrier["content"]}, *parts]
    return result
