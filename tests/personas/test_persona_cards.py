"""SillyTavern Character Card import: V1, V2 and V3 JSON, example dialogue, lorebooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cards import parse_mes_example, slugify
from bot.errors import PersonaError
from bot.personas import Exchange, load_card, persona_from_card

WriteJson = Callable[[str, object], Path]


def test_v2_card(write_json: WriteJson, v2_card: dict[str, Any]) -> None:
    path = write_json("nell.json", v2_card)
    persona = load_card(path)
    assert persona.id == "keeper-nell"
    assert persona.name == "Keeper Nell"
    assert persona.greeting == "Welcome to the rock, {{user}}."
    assert persona.description == "{{char}} keeps the lighthouse on Gull Rock."
    assert persona.personality == "calm, watchful"
    assert persona.scenario == "{{user}} rows out to the lighthouse."
    assert persona.system_prompt == "You are {{char}}."
    assert persona.post_history_instructions == "Stay calm."
    assert persona.alternate_greetings == ("Mind the steps, {{user}}.",)
    assert persona.tags == ("lighthouse", "sea")
    assert persona.creator == "tester"
    assert persona.backend == "offline"
    assert persona.source == str(path)
    assert persona.examples == (
        Exchange("Hi!", "Hello, {{user}}. I'm {{char}}."),
        Exchange("What do you do?", "I keep the lighthouse.\nEvery night, rain or shine."),
        Exchange("Any advice?", "Keep the lamp trimmed."),
    )


def test_character_book_is_kept_as_entries(write_json: WriteJson, v2_card: dict[str, Any]) -> None:
    persona = load_card(write_json("nell.json", v2_card))
    assert persona.knowledge == ()  # the lorebook activates by its keys; it is not pasted
    assert persona.lorebook is not None
    assert [(e.keys, e.content, e.enabled) for e in persona.lorebook.entries] == [
        (("lamp",), "The lamp turns every ten seconds.", True),
        (("storm",), "Secret.", False),
        (("rock",), "Gull Rock is 3 miles out.\nIt has 112 steps.", True),
    ]


def test_v3_card(write_json: WriteJson, v3_card: dict[str, Any]) -> None:
    persona = load_card(write_json("iris.json", v3_card))
    assert persona.id == "captain-iris-vale"  # from the name, not the nickname
    assert persona.name == "Captain Iris Vale"  # the display name stays the name
    assert persona.char_name == "Iris"  # V3: {{char}} stands for the nickname
    assert persona.expand(persona.description, "Sam") == "Iris keeps the lighthouse on Gull Rock."
    assert persona.examples == (Exchange("Where to?", "North, always north."),)
    assert persona.lorebook is not None
    assert persona.lorebook.entries[1].comment == "off"
    assert "Hello, everyone." not in persona.alternate_greetings
    assert persona.group_only_greetings == ("Hello, everyone.",)


def test_v1_card(write_json: WriteJson) -> None:
    card = {
        "name": "Old Tom",
        "description": "A ferryman.",
        "personality": "grumpy",
        "scenario": "",
        "first_mes": "Fare, {{user}}?",
        "mes_example": "<START>\n{{user}}: How much?\nOld Tom: Two coins.",
    }
    persona = load_card(write_json("tom.json", card))
    assert (persona.id, persona.name, persona.greeting) == ("old-tom", "Old Tom", "Fare, {{user}}?")
    assert persona.examples == (Exchange("How much?", "Two coins."),)


def test_tavernai_v1_field_names() -> None:
    card = {"char_name": "Tom", "char_persona": "A ferryman.", "char_greeting": "Hi"}
    persona = persona_from_card(card, source="tom.json")
    assert (persona.name, persona.description, persona.greeting) == ("Tom", "A ferryman.", "Hi")


def test_null_fields_are_empty(v2_card: dict[str, Any]) -> None:
    v2_card["data"].update(system_prompt=None, character_book=None, tags=None)
    persona = persona_from_card(v2_card)
    assert (persona.system_prompt, persona.lorebook, persona.tags) == ("", None, ())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", (), id="empty"),
        pytest.param(
            "<START>\n{{user}}: Hi\n{{char}}: Hello",
            (("Hi", "Hello"),),
            id="macros",
        ),
        pytest.param("<USER>: Hi\n<BOT>: Hello", (("Hi", "Hello"),), id="tags-no-start"),
        pytest.param("{{User}}:Hi\n{{ CHAR }}:  Hello", (("Hi", "Hello"),), id="case-and-spacing"),
        pytest.param(
            "{{user}}: Hi\nNell: Hello\nnell: again", (("Hi", "Hello\nagain"),), id="by-name-merged"
        ),
        pytest.param(
            "{{user}}: line one\nline two\n{{char}}: answer\n\nmore",
            (("line one\nline two", "answer\n\nmore"),),
            id="multi-line-turns",
        ),
        pytest.param(
            "<START>\n{{char}}: I speak first\n{{user}}: Hi\n{{char}}: Hello\n{{user}}: Bye",
            (("Hi", "Hello"),),
            id="unpaired-turns-drop",
        ),
        pytest.param(
            "<START>\n{{user}}: a\n<start>\n{{char}}: b",
            (),
            id="blocks-do-not-pair-across-start",
        ),
        pytest.param(
            "{{user}}: Where is {{char}}?\n{{char}}: Here, {{user}}.",
            (("Where is {{char}}?", "Here, {{user}}."),),
            id="macros-kept-in-text",
        ),
    ],
)
def test_parse_mes_example(text: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_mes_example(text, ["Nell"]) == expected


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        pytest.param("Keeper Nell", "keeper-nell", id="words"),
        pytest.param("Dr. Émile Zola!", "dr-emile-zola", id="accents-punctuation"),
        pytest.param("  R2-D2  ", "r2-d2", id="digits"),
        pytest.param("八重", "", id="no-ascii"),
        pytest.param("x" * 60, "x" * 48, id="truncated"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_id_falls_back_to_file_name(write_json: WriteJson, v2_card: dict[str, Any]) -> None:
    v2_card["data"]["name"] = "八重"
    assert load_card(write_json("yae.json", v2_card)).id == "yae"


def test_id_can_be_given(write_json: WriteJson, v2_card: dict[str, Any]) -> None:
    assert load_card(write_json("nell.json", v2_card), persona_id="nell").id == "nell"


def _with(card: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**card, "data": {**card["data"], **data}}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param(lambda c: "{not json", None, "bad JSON", id="bad-json"),
        pytest.param(lambda c: "[1, 2]", None, "not a character card", id="array"),
        pytest.param(
            lambda c: {"hello": "world"}, None, "not a character card", id="no-spec-no-name"
        ),
        pytest.param(
            lambda c: {**c, "spec": "chara_card_v9"},
            "spec",
            "unsupported card spec",
            id="wrong-spec",
        ),
        pytest.param(lambda c: {**c, "spec": 2}, "spec", "expected a string", id="spec-int"),
        pytest.param(
            lambda c: {**c, "spec_version": "3.0"},
            "spec_version",
            "unsupported spec_version",
            id="v2-version-3",
        ),
        pytest.param(lambda c: {**c, "data": "x"}, "data", "no 'data' object", id="data-str"),
        pytest.param(
            lambda c: {k: v for k, v in c.items() if k != "data"}, "data", "no 'data'", id="no-data"
        ),
        pytest.param(lambda c: _with(c, name=""), "data.name", "no name", id="empty-name"),
        pytest.param(
            lambda c: {**c, "data": {"description": "x"}}, "data.name", "no name", id="missing-name"
        ),
        pytest.param(
            lambda c: _with(c, name=3), "data.name", "expected a string, got int", id="name-int"
        ),
        pytest.param(lambda c: _with(c, tags="sea"), "data.tags", "list of strings", id="tags-str"),
        pytest.param(
            lambda c: _with(c, alternate_greetings=["a", 1]),
            "data.alternate_greetings[1]",
            "string",
            id="greeting-int",
        ),
        pytest.param(
            lambda c: _with(c, character_book=[]), "data.character_book", "object", id="book-list"
        ),
        pytest.param(
            lambda c: _with(c, character_book={"entries": {}}),
            "data.character_book.entries",
            "list",
            id="entries-dict",
        ),
        pytest.param(
            lambda c: _with(c, character_book={"entries": ["x"]}),
            "data.character_book.entries[0]",
            "object",
            id="entry-str",
        ),
        pytest.param(
            lambda c: _with(c, character_book={"entries": [{"content": 1}]}),
            "data.character_book.entries[0].content",
            "string",
            id="entry-content-int",
        ),
        pytest.param(
            lambda c: _with(c, character_book={"entries": [{"content": "a", "enabled": "yes"}]}),
            "data.character_book.entries[0].enabled",
            "true or false",
            id="entry-enabled-str",
        ),
    ],
)
def test_bad_json_card(
    write_json: WriteJson,
    v2_card: dict[str, Any],
    change: Callable[[dict[str, Any]], object],
    field: str | None,
    message: str,
) -> None:
    path = write_json("bad.json", change(v2_card))
    with pytest.raises(PersonaError) as caught:
        load_card(path)
    assert caught.value.field == field
    assert caught.value.source == str(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_v3_rejects_unsupported_version(write_json: WriteJson, v3_card: dict[str, Any]) -> None:
    with pytest.raises(PersonaError, match=r"unsupported spec_version .4\.0."):
        load_card(write_json("v4.json", {**v3_card, "spec_version": "4.0"}))


def test_v3_accepts_minor_versions(write_json: WriteJson, v3_card: dict[str, Any]) -> None:
    persona = load_card(write_json("v31.json", {**v3_card, "spec_version": "3.1"}))
    assert persona.char_name == "Iris"


def test_not_utf8_json(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_bytes(json.dumps({"name": "Zoë"}, ensure_ascii=False).encode("utf-16"))
    with pytest.raises(PersonaError, match="not UTF-8"):
        load_card(path)


def test_lone_surrogates_are_replaced(write_json: WriteJson) -> None:
    persona = load_card(write_json("s.json", '{"name": "Nell", "description": "a\\ud800b"}'))
    assert persona.description == "a?b"
