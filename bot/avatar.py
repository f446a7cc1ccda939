"""A persona's picture: the card's own image, else a default one drawn from its name.

A PNG card is its own avatar (V3: the ``icon`` asset ``ccdefault:`` is the PNG
itself). A JSON or TOML card may name its icon as a ``data:`` URL asset; anything
else (an ``https:`` icon) is not fetched: the default avatar stands in. Reading the
file is blocking I/O: callers run :func:`card_image` off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from bot.cards import PNG_SIGNATURE
from bot.persona_model import Persona

#: The largest image we serve or embed (a card PNG is rarely over a few MiB).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|webp|gif));base64,(.*)", re.DOTALL)
_SIGNATURES = {
    "image/png": (PNG_SIGNATURE,),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True, slots=True)
class Image:
    """Image bytes and their content type."""

    data: bytes
    content_type: str


def card_image(persona: Persona) -> Image | None:
    """The card's own picture, or ``None`` when it has none we can use."""
    source = Path(persona.source) if persona.source else None
    if source is not None and source.suffix.lower() == ".png":
        try:
            if source.stat().st_size <= MAX_IMAGE_BYTES:
                data = source.read_bytes()
                if data.startswith(PNG_SIGNATURE):
                    return Image(data, "image/png")
        except OSError:
            pass
    assets = persona.card.assets if persona.card is not None else None
    icons = [a for a in assets or () if a.type == "icon"]
    icons.sort(key=lambda a: a.name != "main")
    for icon in icons:
        if (image := _data_url(icon.uri)) is not None:
            return image
    return None


def _data_url(uri: str) -> Image | None:
    match = _DATA_URL.fullmatch(uri.strip())
    if match is None or len(match[2]) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        return None
    try:
        data = base64.b64decode("".join(match[2].split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = match[1]
    if not data.startswith(_SIGNATURES[kind]):
        return None  # the bytes must be what the URL says they are
    return Image(data, kind)


def colour(name: str) -> tuple[int, int, int]:
    """A stable, fairly dark colour for ``name`` (white text reads on it)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return (40 + digest[0] % 120, 40 + digest[1] % 120, 40 + digest[2] % 120)


def default_avatar_png(name: str, size: int = 256) -> bytes:
    """A plain square PNG in the name's colour: the image of an exported card that had
    none (a PNG card needs an image to live in)."""
    red, green, blue = colour(name)
    row = b"\x00" + bytes((red, green, blue)) * size
    pixels = zlib.compress(row * size, 9)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def default_avatar_svg(name: str) -> str:
    """A round badge with the name's first letter, for the web page."""
    red, green, blue = colour(name)
    letter = next((c for c in name if c.isalnum()), "?").upper()
    escaped = letter.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">'
        f'<circle cx="32" cy="32" r="32" fill="rgb({red},{green},{blue})"/>'
        '<text x="32" y="42" font-family="sans-serif" font-size="28" fill="#fff" '
        f'text-anchor="middle">{escaped}</text></svg>'
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
