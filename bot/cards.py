"""SillyTavern Character Cards: V1/V2/V3 JSON and PNG cards (``chara``/``ccv3`` chunks).

This module only decodes the file formats into a :class:`CardData`; :mod:`bot.personas`
turns that into a :class:`~bot.personas.Persona`. Every problem is a
:class:`~bot.errors.PersonaError` naming the file and, where there is one, the field.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from bot.errors import PersonaError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
# A zTXt/iTXt chunk is tiny on disk but may inflate to anything: cap what we accept
# (and inflate only the chunks a card can be in, once each: see png_text_chunks).
_MAX_TEXT = 16 * 1024 * 1024
#: The text chunks a character card can be in, the first found winning.
CARD_KEYWORDS = ("ccv3", "chara")
_SPECS = {"chara_card_v2": 2, "chara_card_v3": 3}
# TavernAI/Pygmalion V1 cards used other names for the same fields.
_V1_ALIASES = {
    "name": "char_name",
    "description": "char_persona",
    "scenario": "world_scenario",
    "first_mes": "char_greeting",
    "mes_example": "example_dialogue",
}
_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)
_MACRO_SPEAKER = re.compile(r"(\{\{\s*(user|char)\s*\}\}|<(USER|BOT)>)\s*:\s?(.*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CardData:
    """What a character card says, with ``{{char}}``/``{{user}}`` kept as written;
    ``slug`` is the card's name made into an id (empty for a name with no ASCII)."""

    name: str
    slug: str = ""
    greeting: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    examples: tuple[tuple[str, str], ...] = ()
    knowledge: tuple[str, ...] = ()
    alternate_greetings: tuple[str, ...] = ()
    creator: str = ""
    tags: tuple[str, ...] = ()


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


def read_card(obj: Any, source: str) -> CardData:
    """Read a V1, V2 or V3 character card from its parsed JSON."""
    if not isinstance(obj, dict):
        raise PersonaError("not a character card (expected a JSON object)", source=source)
    fields = _Fields(source)
    if "spec" in obj:
        spec = fields.text(obj, "spec")
        if spec not in _SPECS:
            raise PersonaError(f"unsupported card spec {spec!r}", source=source, field="spec")
        version = obj.get("spec_version")
        if version is not None and not _major_is(version, _SPECS[spec]):
            raise PersonaError(
                f"unsupported spec_version {version!r} for {spec}",
                source=source,
                field="spec_version",
            )
        data = obj.get("data")
        if not isinstance(data, dict):
            raise PersonaError("card has no 'data' object", source=source, field="data")
        fields.prefix = "data."
    elif any(key in obj for key in (*_V1_ALIASES, *_V1_ALIASES.values())):
        data = {key: obj.get(key, obj.get(alias)) for key, alias in _V1_ALIASES.items()}
        data["personality"] = obj.get("personality")
    else:
        raise PersonaError("not a character card (no 'spec' and no 'name')", source=source)
    return fields.card(data)


def _major_is(version: object, major: int) -> bool:
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        return False
    return str(version).split(".")[0].strip() == str(major)


class _Fields:
    """Typed access to a card's fields; errors name the field (``data.name``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.prefix = ""

    def fail(self, field: str, message: str) -> PersonaError:
        return PersonaError(message, source=self.source, field=self.prefix + field)

    def text(self, obj: Mapping[str, Any], key: str) -> str:
        return self.check_text(obj.get(key), key)

    def check_text(self, value: object, field: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {type(value).__name__}")
        # json.loads lets lone surrogates through; they could never be written back out.
        return value.encode("utf-8", "replace").decode("utf-8").strip()

    def texts(self, obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {type(value).__name__}")
        items = (self.check_text(item, f"{key}[{i}]") for i, item in enumerate(value))
        return tuple(item for item in items if item)

    def card(self, data: Mapping[str, Any]) -> CardData:
        name = self.text(data, "name")
        if not name:
            raise self.fail("name", "the card has no name")
        nickname = self.text(data, "nickname")
        return CardData(
            # V3: when a nickname is set, {{char}} stands for it rather than the name.
            name=nickname or name,
            slug=slugify(name),
            greeting=self.text(data, "first_mes"),
            description=self.text(data, "description"),
            personality=self.text(data, "personality"),
            scenario=self.text(data, "scenario"),
            system_prompt=self.text(data, "system_prompt"),
            post_history_instructions=self.text(data, "post_history_instructions"),
            examples=parse_mes_example(self.text(data, "mes_example"), (name, nickname)),
            knowledge=self.book(data.get("character_book")),
            alternate_greetings=self.texts(data, "alternate_greetings"),
            creator=self.text(data, "creator"),
            tags=self.texts(data, "tags"),
        )

    def book(self, book: object) -> tuple[str, ...]:
        if book is None:
            return ()
        if not isinstance(book, dict):
            raise self.fail("character_book", "expected an object")
        entries = book.get("entries")
        if entries is None:
            return ()
        if not isinstance(entries, list):
            raise self.fail("character_book.entries", "expected a list")
        lines: list[str] = []
        for i, entry in enumerate(entries):
            key = f"character_book.entries[{i}]"
            if not isinstance(entry, dict):
                raise self.fail(key, "expected an object")
            enabled = entry.get("enabled", True)
            if not isinstance(enabled, bool):
                raise self.fail(f"{key}.enabled", "expected true or false")
            content = self.check_text(entry.get("content"), f"{key}.content")
            if enabled:
                lines.extend(line.strip() for line in content.splitlines() if line.strip())
        return tuple(lines)


def parse_mes_example(text: str, names: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """Parse SillyTavern example dialogue into ``(user, char)`` pairs.

    Blocks are separated by ``<START>``; a turn starts with ``{{user}}:``/``<USER>:``,
    ``{{char}}:``/``<BOT>:`` or the character's name and a colon, and runs until the
    next turn (lines joined with newlines). Consecutive turns of one speaker merge; a
    block's opening character line and an unanswered user line have no pair and drop.
    """
    named = [re.escape(n) for n in names if n]
    by_name = re.compile(rf"({'|'.join(named)})\s*:\s?(.*)", re.IGNORECASE) if named else None
    pairs: list[tuple[str, str]] = []
    for block in _START.split(text):
        turns: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            speaker, said = _speaker(line, by_name)
            if speaker is None:
                if turns:
                    turns[-1][1].append(line)
            elif turns and turns[-1][0] == speaker:
                turns[-1][1].append(said)
            else:
                turns.append((speaker, [said]))
        joined = [(who, "\n".join(lines).strip()) for who, lines in turns]
        pairs.extend(
            (said, answer)
            for (who, said), (next_who, answer) in pairwise(joined)
            if who == "user" and next_who == "char" and said and answer
        )
    return tuple(pairs)


def _speaker(line: str, by_name: re.Pattern[str] | None) -> tuple[str | None, str]:
    stripped = line.strip()
    if match := _MACRO_SPEAKER.fullmatch(stripped):
        who = (match.group(2) or match.group(3)).lower()
        return ("user" if who == "user" else "char"), match.group(4)
    if by_name and (match := by_name.fullmatch(stripped)):
        return "char", match.group(2)
    return None, line


def slugify(name: str) -> str:
    """A persona id from a display name: lowercase ASCII, words joined by hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].rstrip("-")
