"""PNG character cards: chunk parsing, CRCs, chara/ccv3 keywords."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.errors import PersonaError
from bot.personas import load_card

WritePng = Callable[..., Path]


def test_chara_chunk(write_png: WritePng, v2_card: dict[str, Any]) -> None:
    path = write_png("nell.png", {"chara": v2_card})
    persona = load_card(path)
    assert (persona.id, persona.name, persona.source) == ("keeper-nell", "Keeper Nell", str(path))
    assert len(persona.examples) == 3


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("chara", "ccv3"), id="chara-first"),
        pytest.param(("ccv3", "chara"), id="ccv3-first"),
    ],
)
def test_ccv3_wins_over_chara(
    write_png: WritePng, v2_card: dict[str, Any], v3_card: dict[str, Any], order: tuple[str, ...]
) -> None:
    cards = {"chara": v2_card, "ccv3": v3_card}
    persona = load_card(write_png("both.png", {key: cards[key] for key in order}))
    assert persona.char_name == "Iris"


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(b"tEXt", id="tEXt"),
        pytest.param(b"zTXt", id="zTXt"),
        pytest.param(b"iTXt", id="iTXt"),
    ],
)
def test_text_chunk_kinds(write_png: WritePng, v2_card: dict[str, Any], kind: bytes) -> None:
    assert load_card(write_png("nell.png", {"chara": v2_card}, kind)).name == "Keeper Nell"


def test_keyword_case_and_base64_whitespace(
    write_png: WritePng, png_kit: SimpleNamespace, v2_card: dict[str, Any]
) -> None:
    payload = png_kit.card_b64(v2_card)
    wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    assert load_card(write_png("nell.png", {"Chara": wrapped})).name == "Keeper Nell"


def _chunks_then_corrupt(kit: SimpleNamespace, card: dict[str, Any]) -> bytes:
    data = bytearray(kit.png(kit.text_chunk("chara", kit.card_b64(card))))
    data[45] ^= 0xFF  # a byte inside the tEXt chunk's data: its CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize(
    ("build", "field", "message"),
    [
        pytest.param(lambda kit, card: kit.png(), None, "no character card", id="no-card-chunk"),
        pytest.param(
            lambda kit, card: kit.png(kit.text_chunk("Comment", "hello")),
            None,
            "no character card",
            id="other-text-only",
        ),
        pytest.param(_chunks_then_corrupt, None, "bad CRC in PNG chunk b'tEXt'", id="bad-crc"),
        pytest.param(
            lambda kit, card: b"GIF89a" + kit.png()[8:], None, "bad signature", id="bad-signature"
        ),
        pytest.param(lambda kit, card: b"", None, "bad signature", id="empty-file"),
        pytest.param(lambda kit, card: kit.png()[:-6], None, "truncated", id="truncated"),
        pytest.param(
            lambda kit, card: kit.png(kit.text_chunk("chara", "@@not base64@@")),
            "chara",
            "bad base64",
            id="bad-base64",
        ),
        pytest.param(
            lambda kit, card: kit.png(kit.text_chunk("ccv3", "bm90IGpzb24=")),
            "ccv3",
            "bad JSON",
            id="base64-not-json",
        ),
        pytest.param(
            lambda kit, card: kit.png(kit.chunk(b"tEXt", b"no separator")),
            None,
            "malformed PNG tEXt",
            id="text-no-nul",
        ),
        pytest.param(
            lambda kit, card: kit.png(kit.chunk(b"zTXt", b"chara\0\0garbage")),
            None,
            "malformed PNG zTXt",
            id="bad-zlib",
        ),
    ],
)
def test_bad_png(
    tmp_path: Path,
    png_kit: SimpleNamespace,
    v2_card: dict[str, Any],
    build: Callable[[SimpleNamespace, dict[str, Any]], bytes],
    field: str | None,
    message: str,
) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(build(png_kit, v2_card))
    with pytest.raises(PersonaError) as caught:
        load_card(path)
    assert caught.value.field == field
    assert caught.value.source == str(path)
    assert message in str(caught.value)


def test_ccv3_is_used_even_when_broken(
    tmp_path: Path, png_kit: SimpleNamespace, v2_card: dict[str, Any]
) -> None:
    path = tmp_path / "both.png"
    chara = png_kit.text_chunk("chara", png_kit.card_b64(v2_card))
    path.write_bytes(png_kit.png(chara, png_kit.text_chunk("ccv3", "!!!")))
    with pytest.raises(PersonaError, match="bad base64"):
        load_card(path)
