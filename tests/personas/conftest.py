"""Builders for persona cards: SillyTavern V2/V3 JSON and hand-made PNG files."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MES_EXAMPLE = (
    "<START>\n"
    "{{user}}: Hi!\n"
    "{{char}}: Hello, {{user}}. I'm {{char}}.\n"
    "{{user}}: What do you do?\n"
    "{{char}}: I keep the lighthouse.\n"
    "Every night, rain or shine.\n"
    "<START>\n"
    "<USER>: Any advice?\n"
    "<BOT>: Keep the lamp trimmed."
)


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def text_chunk(keyword: str, value: str, kind: bytes = b"tEXt") -> bytes:
    """A tEXt, zTXt or iTXt chunk carrying ``value`` under ``keyword``."""
    key = keyword.encode("latin-1") + b"\0"
    if kind == b"tEXt":
        return chunk(kind, key + value.encode("latin-1"))
    if kind == b"zTXt":
        return chunk(kind, key + b"\0" + zlib.compress(value.encode("latin-1")))
    return chunk(kind, key + b"\1\0" + b"en\0" + b"\0" + zlib.compress(value.encode()))


def png(*chunks: bytes) -> bytes:
    """A valid 1x1 greyscale PNG with ``chunks`` between IHDR and IDAT."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return PNG_SIGNATURE + ihdr + b"".join(chunks) + idat + chunk(b"IEND", b"")


def card_b64(card: object) -> str:
    return base64.b64encode(json.dumps(card).encode()).decode("ascii")


@pytest.fixture
def v2_card() -> dict[str, Any]:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Keeper Nell",
            "description": "{{char}} keeps the lighthouse on Gull Rock.",
            "personality": "calm, watchful",
            "scenario": "{{user}} rows out to the lighthouse.",
            "first_mes": "Welcome to the rock, {{user}}.",
            "mes_example": MES_EXAMPLE,
            "creator_notes": "not imported",
            "system_prompt": "You are {{char}}.",
            "post_history_instructions": "Stay calm.",
            "alternate_greetings": ["Mind the steps, {{user}}."],
            "character_book": {
                "entries": [
                    {"keys": ["lamp"], "content": "The lamp turns every ten seconds."},
                    {"keys": ["storm"], "content": "Secret.", "enabled": False},
                    {"keys": ["rock"], "content": "Gull Rock is 3 miles out.\nIt has 112 steps."},
                ]
            },
            "tags": ["lighthouse", "sea"],
            "creator": "tester",
            "character_version": "1",
            "extensions": {},
        },
    }


@pytest.fixture
def v3_card(v2_card: dict[str, Any]) -> dict[str, Any]:
    data = dict(v2_card["data"])
    data.update(
        name="Captain Iris Vale",
        nickname="Iris",
        mes_example="<START>\n{{user}}: Where to?\nIris: North, always north.",
        group_only_greetings=["Hello, everyone."],
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        character_book={
            "entries": [
                {"keys": ["ship"], "content": "The Petrel is a brigantine.", "enabled": True},
                {"keys": ["x"], "content": "Hidden.", "enabled": False, "comment": "off"},
            ]
        },
    )
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, object], Path]:
    def write(name: str, card: object) -> Path:
        path = tmp_path / name
        path.write_text(card if isinstance(card, str) else json.dumps(card), encoding="utf-8")
        return path

    return write


@pytest.fixture
def png_kit() -> SimpleNamespace:
    """The PNG builders, for tests that assemble chunks themselves."""
    return SimpleNamespace(chunk=chunk, text_chunk=text_chunk, png=png, card_b64=card_b64)


@pytest.fixture
def write_png(tmp_path: Path) -> Callable[..., Path]:
    """Write a PNG carrying ``cards`` (keyword -> card JSON) in ``kind`` text chunks."""

    def write(name: str, cards: dict[str, object], kind: bytes = b"tEXt") -> Path:
        chunks = [
            text_chunk(keyword, card if isinstance(card, str) else card_b64(card), kind)
            for keyword, card in cards.items()
        ]
        path = tmp_path / name
        path.write_bytes(png(*chunks))
        return path

    return write
