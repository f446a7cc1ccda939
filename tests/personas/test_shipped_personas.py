"""The personas shipped in ``personas/`` load and carry enough material for the offline bot.

Named one by one: the folder also holds whatever cards a user imported there, and those
are theirs, not held to the shipped cards' bar."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.personas import Persona, PersonaLibrary, load_card

SHIPPED = Path(__file__).resolve().parents[2] / "personas"
CARDS = [SHIPPED / "ada.toml", SHIPPED / "captain-morrow.toml"]


def test_library_loads_with_ada_as_default() -> None:
    library = PersonaLibrary([load_card(path) for path in CARDS])
    assert library.default.id == "ada"
    assert library.default.name == "Professor Ada"
    assert len(library) >= 2
    assert library.find("captain-morrow") is not None


@pytest.fixture(params=CARDS, ids=[path.stem for path in CARDS])
def persona(request: pytest.FixtureRequest) -> Persona:
    return load_card(request.param)


def test_id_matches_file_name(persona: Persona) -> None:
    assert Path(persona.source).stem == persona.id


def test_text_fields(persona: Persona) -> None:
    assert "{{user}}" in persona.greeting
    for text in (persona.description, persona.personality, persona.scenario, persona.system_prompt):
        assert len(text) > 40
    assert persona.backend == "offline"


def test_enough_examples(persona: Persona) -> None:
    assert len(persona.examples) >= 25
    users = [exchange.user.casefold() for exchange in persona.examples]
    assert len(set(users)) == len(users), "example questions repeat"
    for exchange in persona.examples:
        assert exchange.user.strip()
        assert len(exchange.char) >= 80, exchange.user


def test_enough_knowledge(persona: Persona) -> None:
    assert len(persona.knowledge) >= 40
    assert len(set(persona.knowledge)) == len(persona.knowledge)
    for line in persona.knowledge:
        assert "\n" not in line
        assert 10 < len(line) < 300, line


def test_expand_greeting(persona: Persona) -> None:
    greeting = persona.expand(persona.greeting, "Sam")
    assert "Sam" in greeting
    assert "{{" not in greeting
