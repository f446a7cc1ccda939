"""Write a :class:`~bot.card_model.CharacterCard` back out: V3 JSON, V2 for older tools,
and PNG cards carrying both (``ccv3`` and ``chara`` tEXt chunks, base64 of UTF-8 JSON).

What was read is what is written: keys the card did not have stay absent (except the
ones V3 requires), unknown keys come back from ``extra``/``outer``, ``extensions``
verbatim. Dates are not touched, so that an export of an unchanged card is the card.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from bot.card_model import Asset, CharacterCard, Lorebook, LoreEntry
from bot.cards import PNG_SIGNATURE, png_text_chunks
from bot.lore_decorators import parse_decorators

V3_SPEC = {"spec": "chara_card_v3", "spec_version": "3.0"}
V2_SPEC = {"spec": "chara_card_v2", "spec_version": "2.0"}
#: What V3 asks a backfilled V2 card to say (in its creator notes).
V2_WARNING = (
    "This character card is Character Card V3, but it is loaded as a Character Card V2. "
    "Please use a Character Card V3 compatible application to use this character card "
    "properly."
)
_V1_MIRRORS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
_V2_FIELDS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "alternate_greetings",
    "character_book",
    "tags",
    "creator",
    "character_version",
    "extensions",
)


def card_to_v3(card: CharacterCard) -> dict[str, Any]:
    """The card as a Character Card V3 object."""
    data = _v2_data(card)
    data["group_only_greetings"] = list(card.group_only_greetings)
    optional: dict[str, Any] = {
        "nickname": card.nickname,
        "creator_notes_multilingual": (
            None
            if card.creator_notes_multilingual is None
            else dict(card.creator_notes_multilingual)
        ),
        "source": None if card.source is None else list(card.source),
        "creation_date": card.creation_date,
        "modification_date": card.modification_date,
        "assets": None if card.assets is None else [_asset(a) for a in card.assets],
    }
    data |= {k: v for k, v in optional.items() if v is not None}
    data |= _copy(card.extra)
    return {**_copy(card.outer), **V3_SPEC, "data": data}


def card_to_v2(card: CharacterCard) -> dict[str, Any]:
    """The card as a Character Card V2 object with the V1 fields mirrored at the top,
    as SillyTavern writes it for tools that know only V1 or V2. As V3 asks of a
    backfilled V2 card, its creator notes start with a warning and its lorebook
    entries lose their decorators."""
    data = _v2_data(card)
    data["creator_notes"] = "\n\n".join(t for t in (V2_WARNING, card.creator_notes) if t)
    book = data.get("character_book")
    if book is not None:
        for entry in book["entries"]:
            entry["content"] = parse_decorators(entry["content"])[1]
    top = {key: data[key] for key in _V1_MIRRORS}
    return {**top, **V2_SPEC, "data": data}


def card_json(card: CharacterCard) -> bytes:
    """The V3 card as UTF-8 JSON (readable: indented, non-ASCII kept)."""
    return (json.dumps(card_to_v3(card), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def card_png(card: CharacterCard, image: bytes) -> bytes:
    """``image`` (a PNG) with the card in it: any old ``chara``/``ccv3`` chunks are
    removed, and the V3 (``ccv3``) and V2 (``chara``) chunks go in before IEND."""
    png_text_chunks(image, "image")  # checks the signature and every CRC
    chunks = []
    pos = len(PNG_SIGNATURE)
    while pos < len(image):
        (length,) = struct.unpack(">I", image[pos : pos + 4])
        end = pos + 12 + length
        kind, body = image[pos + 4 : pos + 8], image[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            break
        if not (kind in (b"tEXt", b"zTXt", b"iTXt") and _keyword(body) in ("chara", "ccv3")):
            chunks.append(image[pos:end])
        pos = end
    cards = [
        _text_chunk("chara", _b64(card_to_v2(card))),
        _text_chunk("ccv3", _b64(card_to_v3(card))),
    ]
    return PNG_SIGNATURE + b"".join(chunks) + b"".join(cards) + _chunk(b"IEND", b"")


def lorebook_to_json(book: Lorebook) -> dict[str, Any]:
    """A lorebook as the specs' object (also the ``data`` of a ``lorebook_v3`` file)."""
    out: dict[str, Any] = {}
    for key in ("name", "description", "scan_depth", "token_budget", "recursive_scanning"):
        if (value := getattr(book, key)) is not None:
            out[key] = value
    out["extensions"] = _copy(book.extensions)
    out["entries"] = [_entry(entry) for entry in book.entries]
    return out | _copy(book.extra)


def _v2_data(card: CharacterCard) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in _V2_FIELDS:
        value = getattr(card, key)
        if key == "character_book":
            if value is not None:
                data[key] = lorebook_to_json(value)
        elif isinstance(value, tuple):
            data[key] = list(value)
        elif isinstance(value, Mapping):
            data[key] = _copy(value)
        else:
            data[key] = value
    return data


def _entry(entry: LoreEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keys": list(entry.keys),
        "content": entry.content,
        "extensions": _copy(entry.extensions),
        "enabled": entry.enabled,
    }
    for key in (
        "insertion_order",
        "case_sensitive",
        "use_regex",
        "constant",
        "name",
        "priority",
        "id",
        "comment",
        "selective",
        "position",
    ):
        if (value := getattr(entry, key)) is not None:
            out[key] = value
    if entry.secondary_keys is not None:
        out["secondary_keys"] = list(entry.secondary_keys)
    return out | _copy(entry.extra)


def _asset(asset: Asset) -> dict[str, Any]:
    out: dict[str, Any] = {"type": asset.type, "uri": asset.uri}
    out |= {k: v for k in ("name", "ext") if (v := getattr(asset, k)) is not None}
    return out | _copy(asset.extra)


def _copy(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value)))


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj, ensure_ascii=False).encode("utf-8")).decode("ascii")


def _keyword(body: bytes) -> str:
    return body.partition(b"\0")[0].decode("latin-1").lower()


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _text_chunk(keyword: str, text: str) -> bytes:
    return _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
