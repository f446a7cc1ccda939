"""TOML persona cards: fields, defaults and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import PersonaError
from bot.personas import Exchange, Persona, load_card, parse_toml

FULL = '''
id = "nell"
name = "Keeper Nell"
greeting = "Welcome, {{user}}."
description = "Keeps a lighthouse."
personality = "calm"
scenario = "A rock at sea."
system_prompt = "You are {{char}}."
post_history_instructions = "Stay calm."
alternate_greetings = ["Mind the steps."]
knowledge = ["The lamp turns every ten seconds.", "There are 112 steps."]
backend = "openai"
fallback = ["offline"]
creator = "tester"
tags = ["sea"]

[backend_options]
model = "small"
temperature = 0.7
stop = ["\\n\\n"]

[[example]]
user = "Hi"
char = "Hello."

[[example]]
user = "How many steps?"
char = """
A hundred and twelve.
I counted."""
'''


def test_full_card(tmp_path: Path) -> None:
    path = tmp_path / "nell.toml"
    path.write_text(FULL, encoding="utf-8")
    persona = load_card(path)
    assert persona == Persona(
        id="nell",
        name="Keeper Nell",
        greeting="Welcome, {{user}}.",
        description="Keeps a lighthouse.",
        personality="calm",
        scenario="A rock at sea.",
        system_prompt="You are {{char}}.",
        post_history_instructions="Stay calm.",
        examples=(
            Exchange("Hi", "Hello."),
            Exchange("How many steps?", "A hundred and twelve.\nI counted."),
        ),
        knowledge=("The lamp turns every ten seconds.", "There are 112 steps."),
        alternate_greetings=("Mind the steps.",),
        backend="openai",
        backend_options={"model": "small", "temperature": 0.7, "stop": ["\n\n"]},
        fallback=("offline",),
        creator="tester",
        tags=("sea",),
        source=str(path),
    )


def test_minimal_card_defaults() -> None:
    persona = parse_toml('id = "x"\nname = "X"\n')
    assert persona.backend == "offline"
    assert persona.examples == ()
    assert persona.knowledge == ()
    assert dict(persona.backend_options) == {}


def test_backend_options_are_read_only() -> None:
    persona = parse_toml('id = "x"\nname = "X"\n[backend_options]\nmodel = "m"\n')
    with pytest.raises(TypeError):
        persona.backend_options["model"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        pytest.param('id = "x"\nname = "X', None, "bad TOML", id="bad-toml"),
        pytest.param(
            'id = "x"\nnmae = "X"\nname = "X"', "nmae", "did you mean 'name'", id="typo-key"
        ),
        pytest.param(
            'id = "x"\nname = "X"\ncolour = "deep"', "colour", "unknown key", id="unknown-key"
        ),
        pytest.param('name = "X"', "id", "required", id="missing-id"),
        pytest.param('id = "x"', "name", "required", id="missing-name"),
        pytest.param('id = "x"\nname = "  "', "name", "required", id="blank-name"),
        pytest.param('id = "Bad Id"\nname = "X"', "id", "invalid id", id="bad-id"),
        pytest.param(f'id = "{"a" * 49}"\nname = "X"', "id", "invalid id", id="id-too-long"),
        pytest.param('id = "x"\nname = 3', "name", "expected a string, got int", id="name-int"),
        pytest.param(
            'id = "x"\nname = "X"\nknowledge = "x"', "knowledge", "list", id="knowledge-str"
        ),
        pytest.param(
            'id = "x"\nname = "X"\nknowledge = ["a", 2]',
            "knowledge[1]",
            "string",
            id="knowledge-item",
        ),
        pytest.param(
            'id = "x"\nname = "X"\ngreeting = ["a"]', "greeting", "string", id="greeting-list"
        ),
        pytest.param('id = "x"\nname = "X"\nbackend = 1', "backend", "string", id="backend-int"),
        pytest.param(
            'id = "x"\nname = "X"\nfallback = "openai"', "fallback", "list", id="fallback-str"
        ),
        pytest.param(
            'id = "x"\nname = "X"\nbackend_options = "x"',
            "backend_options",
            "table",
            id="options-str",
        ),
        pytest.param(
            'id = "x"\nname = "X"\nexample = "hi"', "example", "[[example]]", id="example-str"
        ),
        pytest.param(
            'id = "x"\nname = "X"\n[[example]]\nuser = "hi"',
            "example[0].char",
            "got NoneType",
            id="example-no-char",
        ),
        pytest.param(
            'id = "x"\nname = "X"\n[[example]]\nuser = "a"\nchar = "b"\nbot = "c"',
            "example[0].bot",
            "unknown key",
            id="example-extra-key",
        ),
    ],
)
def test_bad_toml_card(tmp_path: Path, text: str, field: str | None, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PersonaError) as caught:
        load_card(path)
    error = caught.value
    assert error.field == field
    assert error.source == str(path)
    assert message in str(error)
    assert str(path) in str(error)
    if field:
        assert repr(field) in str(error)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes('id = "x"\nname = "Zoë"\n'.encode("latin-1"))
    with pytest.raises(PersonaError, match="not UTF-8"):
        load_card(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="cannot read card"):
        load_card(tmp_path / "gone.toml")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text("name: x", encoding="utf-8")
    with pytest.raises(PersonaError, match="unsupported card type"):
        load_card(path)


def test_persona_id_override(tmp_path: Path) -> None:
    path = tmp_path / "nell.toml"
    path.write_text(FULL, encoding="utf-8")
    assert load_card(path, persona_id="nell-2").id == "nell-2"
