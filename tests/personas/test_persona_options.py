"""Which brain a card uses: the sidecar of an imported card, else the card's own
(``extensions.personabridge`` or TOML keys), else DEFAULT_BACKEND."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import PersonaError
from bot.personas import PersonaLibrary, card_of, load_card, sidecar_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def v2(extensions: dict[str, object] | None = None) -> str:
    data = {"name": "Nell", "extensions": extensions or {}}
    return json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data})


def test_a_card_naming_no_backend_gets_the_default(tmp_path: Path) -> None:
    card = write(tmp_path / "nell.json", v2())
    assert load_card(card).backend == "offline"
    assert load_card(card, default_backend="openai").backend == "openai"
    toml = write(tmp_path / "t.toml", 'id = "t"\nname = "T"\n')
    assert load_card(toml, default_backend="openai").backend == "openai"


def test_the_card_extension_names_the_backend(tmp_path: Path) -> None:
    ours = {"backend": "openai", "fallback": ["offline"], "backend_options": {"model": "m"}}
    persona = load_card(
        write(tmp_path / "nell.json", v2({"personabridge": ours})), default_backend="x"
    )
    assert (persona.backend, persona.fallback, dict(persona.backend_options)) == (
        "openai",
        ("offline",),
        {"model": "m"},
    )


def test_the_sidecar_wins_and_goes_into_the_export(tmp_path: Path) -> None:
    card = write(tmp_path / "nell.json", v2({"personabridge": {"backend": "openai"}, "x": 1}))
    write(sidecar_path(card), 'id = "nelly"\nbackend = "characterai"\n')
    persona = load_card(card)
    assert (persona.id, persona.backend) == ("nelly", "characterai")
    exported = card_of(persona).extensions
    assert exported == {"personabridge": {"backend": "characterai"}, "x": 1}
    toml = write(tmp_path / "t.toml", 'id = "t"\nname = "T"\nbackend = "offline"\n')
    write(sidecar_path(toml), 'backend = "openai"\n')
    assert load_card(toml).backend == "openai"


def test_sidecars_are_not_cards(tmp_path: Path) -> None:
    card = write(tmp_path / "nell.json", v2())
    write(sidecar_path(card), 'id = "nell"\n')
    assert [p.id for p in PersonaLibrary.from_directory(tmp_path)] == ["nell"]


@pytest.mark.parametrize(
    ("sidecar", "field"),
    [
        pytest.param("backend = 3\n", "backend", id="backend-int"),
        pytest.param('fallback = "offline"\n', "fallback", id="fallback-str"),
        pytest.param('model = "m"\n', "model", id="unknown-key"),
        pytest.param('id = "Bad Id"\n', "id", id="bad-id"),
    ],
)
def test_a_bad_sidecar_names_the_field(tmp_path: Path, sidecar: str, field: str) -> None:
    card = write(tmp_path / "nell.json", v2())
    write(sidecar_path(card), sidecar)
    with pytest.raises(PersonaError) as caught:
        load_card(card)
    assert caught.value.field == field and str(sidecar_path(card)) in str(caught.value)


def test_a_bad_card_extension_names_the_field(tmp_path: Path) -> None:
    card = write(tmp_path / "nell.json", v2({"personabridge": {"backend_options": []}}))
    with pytest.raises(PersonaError) as caught:
        load_card(card)
    assert caught.value.field == "data.extensions.personabridge.backend_options"
