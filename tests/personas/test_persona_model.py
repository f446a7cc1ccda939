"""Persona.expand: {{char}}/{{user}} macros and their SillyTavern spellings."""

from __future__ import annotations

import pytest

from bot.personas import Persona

PERSONA = Persona(id="nell", name="Keeper Nell")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Hello, {{user}}.", "Hello, Sam.", id="user"),
        pytest.param("I'm {{char}}.", "I'm Keeper Nell.", id="char"),
        pytest.param("{{ CHAR }} greets {{User}}", "Keeper Nell greets Sam", id="case-and-spaces"),
        pytest.param("<BOT> to <USER>", "Keeper Nell to Sam", id="bot-user-tags"),
        pytest.param("{{char}}{{char}}", "Keeper NellKeeper Nell", id="repeated"),
        pytest.param("{{random}} and {user}", "{{random}} and {user}", id="other-text-untouched"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert PERSONA.expand(text, "Sam") == expected


def test_user_name_is_not_expanded_again() -> None:
    assert PERSONA.expand("Hi {{user}}", "{{char}}") == "Hi {{char}}"
