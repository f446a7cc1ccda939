"""A persona's voice for replies read aloud (``/voice on``): a TOML card's ``voice``,
an imported card's ``extensions.personabridge.voice``, or its sidecar's ``voice``;
kept through export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import PersonaError
from bot.persona_toml import export_toml, parse_toml
from bot.personas import card_of, load_card, sidecar_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def v2(extensions: dict[str, object]) -> str:
    data = {"name": "Nell", "extensions": extensions}
    return json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data})


def test_a_toml_card_names_its_voice_and_exports_it(tmp_path: Path) -> None:
    persona = load_card(write(tmp_path / "t.toml", 'id = "t"\nname = "T"\nvoice = "nova"\n'))
    assert persona.voice == "nova"
    assert parse_toml(export_toml(persona)).voice == "nova"
    assert card_of(persona).extensions["personabridge"]["voice"] == "nova"


def test_an_imported_card_names_its_voice_in_its_extension_or_sidecar(tmp_path: Path) -> None:
    card = write(tmp_path / "nell.json", v2({"personabridge": {"voice": "shimmer"}}))
    assert load_card(card).voice == "shimmer"
    write(sidecar_path(card), 'voice = "onyx"\n')
    persona = load_card(card)
    assert persona.voice == "onyx"
    assert card_of(persona).extensions["personabridge"] == {"voice": "onyx"}


def test_no_voice_named_is_empty(tmp_path: Path) -> None:
    assert load_card(write(tmp_path / "t.toml", 'id = "t"\nname = "T"\n')).voice == ""


@pytest.mark.parametrize(
    "extension",
    [pytest.param({"voice": 3}, id="int"), pytest.param({"voice": ["a"]}, id="list")],
)
def test_a_voice_that_is_not_a_name_is_refused(tmp_path: Path, extension: object) -> None:
    card = write(tmp_path / "nell.json", v2({"personabridge": extension}))
    with pytest.raises(PersonaError) as caught:
        load_card(card)
    assert caught.value.field is not None and caught.value.field.endswith("voice")
