"""SillyTavern Character Cards: V1/V2/V3 JSON and PNG cards (``chara``/``ccv3`` chunks).

This module decodes the file formats into JSON; :func:`read_card` (from
:mod:`bot.card_reader`) makes that a lossless :class:`~bot.card_model.CharacterCard`, and
:mod:`bot.personas` turns that into a :class:`~bot.personas.Persona`. Every problem is a
:class:`~bot.errors.PersonaError` naming the file and, where there is one, the field.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Collection, Iterable
from typing import Any

from bot.card_reader import read_card
from bot.dialogue import exchanges, parse_example_blocks
from bot.errors import PersonaError

__all__ = [
    "CARD_KEYWORDS",
    "PNG_SIGNATURE",
    "card_from_json",
    "card_from_png",
    "parse_mes_example",
    "png_text_chunks",
    "read_card",
    "slugify",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
# A zTXt/iTXt chunk is tiny on disk but may inflate to anything: cap what we accept
# (and inflate only the chunks a card can be in, once each: see png_text_chunks).
_MAX_TEXT = 16 * 1024 * 1024
#: The text chunks a character card can be in, the first found winning.
CARD_KEYWORDS = ("ccv3", "chara")


def png_text_chunks(
    data: bytes, source: str, keywords: Collection[str] | None = None
) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG, by lower-cased keyword (the first
    chunk of a keyword wins); checks the signature and every chunk's CRC.

    Only the chunks of ``keywords`` (all when None) are decoded: a compressed chunk may
    inflate to 16 MiB, and a hostile file could carry thousands of them."""
    if not data.startswith(PNG_SIGNATURE):
        raise PersonaError("not a PNG file (bad signature)", source=source)
    texts: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PersonaError(f"truncated PNG chunk header at byte {pos}", source=source)
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise PersonaError(f"truncated PNG chunk {kind!r} at byte {pos}", source=source)
        body = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + body) != crc:
            raise PersonaError(f"bad CRC in PNG chunk {kind!r} at byte {pos}", source=source)
        if kind in _TEXT_CHUNKS:
            name, sep, _ = body.partition(b"\0")
            if not sep:
                raise PersonaError(f"malformed PNG {kind.decode()} chunk", source=source)
            keyword = name.decode("latin-1").lower()
            if keyword not in texts and (keywords is None or keyword in keywords):
                texts[keyword] = _decode_text_chunk(kind, body, source)[1]
        pos = end + 4
        if kind == b"IEND":
            break
    return texts


def _decode_text_chunk(kind: bytes, body: bytes, source: str) -> tuple[str, str]:
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        raise PersonaError(f"malformed PNG {kind.decode()} chunk", source=source)
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
        flag, _method = rest[0], rest[1]
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        raw = _inflate(text) if flag else text
        return keyword.decode("latin-1"), raw.decode("utf-8")
    except (IndexError, UnicodeDecodeError, zlib.error) as exc:
        raise PersonaError(f"malformed PNG {kind.decode()} chunk: {exc}", source=source) from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_TEXT)
    if inflater.unconsumed_tail:
        raise zlib.error("compressed text too large")
    return out


def card_from_png(data: bytes, source: str) -> Any:
    """The decoded card JSON of a PNG card; ``ccv3`` wins over ``chara``."""
    chunks = png_text_chunks(data, source, CARD_KEYWORDS)
    keyword = next((k for k in CARD_KEYWORDS if k in chunks), None)
    if keyword is None:
        raise PersonaError("PNG has no character card ('chara' or 'ccv3' chunk)", source=source)
    payload = "".join(chunks[keyword].split())
    try:
        raw = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters in the chunk
        raise PersonaError(f"bad base64: {exc}", source=source, field=keyword) from exc
    return card_from_json(raw, source, field=keyword)


def card_from_json(raw: bytes, source: str, field: str | None = None) -> Any:
    """Parse the bytes of a JSON card (UTF-8, with or without BOM)."""
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise PersonaError(f"card is not UTF-8: {exc}", source=source, field=field) from exc
    except (ValueError, RecursionError) as exc:
        raise PersonaError(f"bad JSON: {exc}", source=source, field=field) from exc


def parse_mes_example(text: str, names: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """The (user, character) pairs of SillyTavern example dialogue (see
    :mod:`bot.dialogue`, which keeps every block and turn)."""
    return exchanges(parse_example_blocks(text, names))


def slugify(name: str) -> str:
    """A persona id from a display name: lowercase ASCII, words joined by hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].rstrip("-")
