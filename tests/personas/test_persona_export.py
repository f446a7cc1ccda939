"""export_toml: a persona written as a TOML card reads back equal (but for ``source``)."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.personas import Exchange, Persona, export_toml, load_card, parse_toml

SHIPPED = Path(__file__).resolve().parents[2] / "personas"

TRICKY = Persona(
    id="tricky_1",
    name='The "Quoted" \\ One',
    greeting='Hi {{user}}!\n"""triple""" and a trailing quote"',
    description="tabs\tand\r\nCRLF and \x00 nul, \x1b escape, \x7f del",
    personality="emoji 😀, accents é, RTL \u05d0, line sep \u2028",
    scenario="\nstarts and ends with newlines\n",
    system_prompt="ends with a backslash \\",
    post_history_instructions="'single' quotes and ''' triple singles",
    examples=(Exchange("q1", "a1\nsecond line"), Exchange("", "")),
    knowledge=("fact one", "multi\nline fact", 'a "quoted" fact'),
    alternate_greetings=("alt 1", "alt\n2"),
    backend="openai",
    backend_options={
        "model": "gpt",
        "temperature": 0.5,
        "max_tokens": 200,
        "stream": True,
        "big": 1e300,
        "inf": float("inf"),
        "stop": ["\n", '"'],
        "nested": {"a b": 1, "deep": {"x": [1, "two"]}, "empty": {}},
        "key with spaces": "v",
        "when": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        "day": date(2024, 5, 1),
        "at": time(7, 30),
    },
    fallback=("offline", "other"),
    creator="someone",
    tags=("a", "b c"),
    source="tricky.toml",
)


def _round_trip(persona: Persona) -> Persona:
    return dataclasses.replace(parse_toml(export_toml(persona)), source=persona.source)


def test_tricky_round_trip() -> None:
    assert _round_trip(TRICKY) == TRICKY


def test_minimal_round_trip_omits_empty_fields() -> None:
    persona = Persona(id="x", name="X")
    text = export_toml(persona)
    assert set(tomllib.loads(text)) == {"id", "name", "backend"}
    assert _round_trip(persona) == persona


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_round_trip(path: Path) -> None:
    persona = load_card(path)
    assert _round_trip(persona) == persona


def test_imported_card_round_trip(
    tmp_path: Path, write_png: Callable[..., Path], v3_card: dict[str, Any]
) -> None:
    persona = load_card(write_png("iris.png", {"ccv3": v3_card}))
    saved = tmp_path / f"{persona.id}.toml"
    saved.write_text(export_toml(persona), encoding="utf-8")
    assert dataclasses.replace(load_card(saved), source=persona.source) == persona


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=200, database=None, deadline=None)
@given(
    name=_text.filter(str.strip),
    greeting=_text,
    examples=st.lists(st.builds(Exchange, _text, _text), max_size=3),
    knowledge=st.lists(_text, max_size=3),
    options=st.dictionaries(_text, _text | st.integers() | st.booleans(), max_size=3),
)
def test_round_trip_any_text(
    name: str,
    greeting: str,
    examples: list[Exchange],
    knowledge: list[str],
    options: dict[str, Any],
) -> None:
    persona = Persona(
        id="p",
        name=name,
        greeting=greeting,
        examples=tuple(examples),
        knowledge=tuple(knowledge),
        backend_options=options,
    )
    assert _round_trip(persona) == persona
