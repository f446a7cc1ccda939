"""Cards lose nothing: import -> export (V3 JSON, PNG with ccv3 + chara) -> import gives
the same card, for cards written to carry every field of the V1, V2 and V3 specs."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.card_export import card_json, card_png, card_to_v3
from bot.card_model import CharacterCard
from bot.cards import png_text_chunks, read_card
from bot.personas import Persona, export_toml, load_card, parse_toml

CARDS = Path(__file__).parent / "cards"
V3 = CARDS / "lighthouse_v3.json"
ALL = [
    pytest.param(V3, id="v3-every-field"),
    pytest.param(CARDS / "ferryman_v2.json", id="v2-with-v1-mirrors"),
    pytest.param(CARDS / "tavern_v1.json", id="v1-tavernai-names"),
    pytest.param(CARDS / "lighthouse.toml", id="toml-every-field"),
]


def _same(card: CharacterCard) -> CharacterCard:
    """The card without what says which file form it came from."""
    return dataclasses.replace(card, spec="", spec_version="")


def _card(persona: Persona) -> CharacterCard:
    assert persona.card is not None
    return persona.card


@pytest.mark.parametrize("path", ALL)
def test_json_export_imports_back_the_same_card(path: Path, tmp_path: Path) -> None:
    first = load_card(path)
    exported = tmp_path / "card.json"
    exported.write_bytes(card_json(_card(first)))
    again = load_card(exported)
    assert _same(_card(again)) == _same(_card(first))
    # A TOML card keeps its [[example]] tables apart from mes_example; V3 has only the latter.
    assert dataclasses.replace(again, source="", id="x", mes_example="") == dataclasses.replace(
        first, source="", id="x", mes_example=""
    )
    assert again.example_dialogue == first.example_dialogue
    assert json.loads(exported.read_bytes())["spec"] == "chara_card_v3"


@pytest.mark.parametrize("path", ALL)
def test_png_export_imports_back_the_same_card(path: Path, tmp_path: Path, png_kit: Any) -> None:
    first = load_card(path)
    image = png_kit.png(png_kit.text_chunk("chara", "old card"), png_kit.text_chunk("Title", "x"))
    exported = tmp_path / "card.png"
    exported.write_bytes(card_png(_card(first), image))
    assert _same(_card(load_card(exported))) == _same(_card(first))
    chunks = png_text_chunks(exported.read_bytes(), "card.png")
    assert chunks["title"] == "x"  # the image's other chunks stay
    v2 = json.loads(base64.b64decode(chunks["chara"]))  # the old chunk was replaced
    assert v2["spec"] == "chara_card_v2" and v2["name"] == first.name
    assert v2["data"]["first_mes"] == _card(first).first_mes
    assert v2["data"]["creator_notes"].startswith("This character card is Character Card V3")
    assert "@@" not in json.dumps(v2["data"].get("character_book", {}))  # V3: no decorators


def test_a_v3_card_exports_exactly_as_it_came() -> None:
    original = json.loads(V3.read_text(encoding="utf-8"))
    assert card_to_v3(read_card(original, str(V3))) == original


def test_every_v3_field_is_read() -> None:
    card = _card(load_card(V3))
    assert card.nickname == "Iris" and card.name == "Captain Iris Vale"
    assert card.description.endswith("\n")  # text kept verbatim
    assert card.creator_notes_multilingual == {
        "en": "Best with a slow model.",
        "fr": "Meilleur avec un modèle lent.",
    }
    assert card.source == ("https://example.org/cards/iris", "iris-local-id")
    assert (card.creation_date, card.modification_date) == (1700000000, 1700000500)
    assert card.group_only_greetings == ("Hello, everyone. Mind the lamp.",)
    assert card.alternate_greetings[1] == "  Mind the steps.  "
    assert card.assets is not None and card.assets[2].extra == {"x_note": "kept"}
    assert card.extensions["some_tool"] == {"nested": [1, 2, {"deep": None}], "flag": True}
    assert card.depth_prompt is not None and card.depth_prompt.depth == 2
    book = card.character_book
    assert book is not None
    assert (book.name, book.scan_depth, book.token_budget, book.recursive_scanning) == (
        "Gull Rock lore",
        3,
        400,
        True,
    )
    lamp = book.entries[0]
    assert lamp.keys == ("lamp", "lantern") and lamp.secondary_keys == ("light", "night")
    assert (lamp.selective, lamp.priority, lamp.id, lamp.position) == (True, 10, 0, "before_char")
    assert lamp.extensions == {"position": 0, "probability": 100, "useProbability": True}
    assert book.entries[2].id == "regex-entry" and book.entries[2].use_regex is True
    assert book.entries[4].enabled is False


def test_the_persona_uses_nickname_for_char_and_keeps_the_name() -> None:
    persona = load_card(V3)
    assert persona.name == "Captain Iris Vale"
    assert persona.char_name == "Iris"
    assert persona.backend_options == {"model": "small", "temperature": 0.7}
    assert [len(block) for block in persona.example_dialogue] == [1, 2, 2]


def test_an_unusable_optional_value_is_kept_as_written() -> None:
    persona = load_card(CARDS / "ferryman_v2.json")
    book = _card(persona).character_book
    assert book is not None and book.entries[0].priority is None
    assert book.entries[0].extra == {"priority": "high"}
    assert _card(persona).extra == {"a_future_field": {"kept": True}}
    assert _card(persona).outer["creatorcomment"] == "kept as written"
    exported = card_to_v3(_card(persona))
    assert exported["data"]["character_book"]["entries"][0]["priority"] == "high"


def test_v1_names_are_mapped_and_other_keys_kept() -> None:
    card = _card(load_card(CARDS / "tavern_v1.json"))
    assert (card.name, card.description, card.scenario) == (
        "Nell",
        "{{char}} keeps bees.",
        "A meadow.",
    )
    assert card.first_mes == "Buzz off, <USER>. Kidding."
    assert card.extra == {"metadata": {"version": 1}}


def test_toml_card_round_trips_through_toml() -> None:
    first = load_card(CARDS / "lighthouse.toml")
    again = parse_toml(export_toml(first), first.source)
    assert again == first
    assert _same(_card(again)) == _same(_card(first))


def test_toml_card_has_every_field() -> None:
    persona = load_card(CARDS / "lighthouse.toml")
    card = _card(persona)
    assert card.nickname == "Iris" and card.character_version == "1.2"
    assert card.assets is not None and card.assets[0].uri == "ccdefault:"
    assert card.character_book is not None and card.character_book.scan_depth == 3
    assert card.character_book.entries[0].secondary_keys == ("night",)
    assert card.personabridge["knowledge"] == ["There are 112 steps."]
    assert persona.depth_prompt is not None and persona.depth_prompt.prompt == "Short sentences."
    exported = card_to_v3(card)["data"]
    assert (
        "<START>\n{{user}}: What do you do?\n{{char}}: I keep the light." in exported["mes_example"]
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(
            'id = "x"\nname = "X"\n[[lorebook]]\nkey = ["a"]\n', "lorebook[0].key", id="typo"
        ),
        pytest.param(
            'id = "x"\nname = "X"\n[[lorebook]]\nkeys = "a"\n', "lorebook[0].keys", id="str"
        ),
        pytest.param(
            'id = "x"\nname = "X"\n[lorebook_settings]\nscan = 1\n',
            "lorebook_settings.scan",
            id="book",
        ),
        pytest.param('id = "x"\nname = "X"\ncreation_date = "today"\n', "creation_date", id="date"),
        pytest.param(
            'id = "x"\nname = "X"\n[[asset]]\ntype = "icon"\nurl = "x"\n',
            "asset[0].url",
            id="asset",
        ),
    ],
)
def test_toml_lorebook_errors_name_the_field(text: str, field: str) -> None:
    from bot.errors import PersonaError

    with pytest.raises(PersonaError) as caught:
        parse_toml(text, "x.toml")
    assert caught.value.field == field


def test_ccv3_chunk_alone_is_enough(tmp_path: Path, png_kit: Any) -> None:
    original = json.loads(V3.read_text(encoding="utf-8"))
    path = tmp_path / "iris.png"
    path.write_bytes(png_kit.png(png_kit.text_chunk("ccv3", png_kit.card_b64(original))))
    assert card_to_v3(_card(load_card(path))) == original


# -- any V3 card ------------------------------------------------------------------------


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-9, 9) | _text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_text, inner, max_size=2),
    max_leaves=4,
)
_entry = st.fixed_dictionaries(
    {
        "keys": st.lists(_text, max_size=2),
        "content": _text,
        "extensions": st.dictionaries(_text, _json, max_size=2),
        "enabled": st.booleans(),
        "insertion_order": st.integers(-5, 500),
        "use_regex": st.booleans(),
    },
    optional={
        "case_sensitive": st.booleans(),
        "constant": st.booleans(),
        "name": _text,
        "priority": st.integers(0, 99) | st.text(max_size=3),  # a wrong type is kept too
        "id": st.integers(0, 9) | _text,
        "comment": _text,
        "selective": st.booleans(),
        "secondary_keys": st.lists(_text, max_size=2),
        "position": st.sampled_from(["before_char", "after_char"]),
        "x_future": _json,
    },
)
_book = st.fixed_dictionaries(
    {
        "extensions": st.dictionaries(_text, _json, max_size=2),
        "entries": st.lists(_entry, max_size=3),
    },
    optional={
        "name": _text,
        "description": _text,
        "scan_depth": st.integers(0, 9),
        "token_budget": st.integers(0, 999),
        "recursive_scanning": st.booleans(),
    },
)
_data = st.fixed_dictionaries(
    {
        "name": _text.filter(str.strip),
        **dict.fromkeys(
            (
                "description",
                "personality",
                "scenario",
                "first_mes",
                "mes_example",
                "creator_notes",
                "system_prompt",
                "post_history_instructions",
                "creator",
                "character_version",
            ),
            _text,
        ),
        "tags": st.lists(_text, max_size=2),
        "alternate_greetings": st.lists(_text, max_size=2),
        "group_only_greetings": st.lists(_text, max_size=2),
        "extensions": st.dictionaries(_text, _json, max_size=3),
    },
    optional={
        "character_book": _book,
        "nickname": _text,
        "creator_notes_multilingual": st.dictionaries(st.sampled_from(["en", "fr", "ja"]), _text),
        "source": st.lists(_text, max_size=2),
        "creation_date": st.integers(0, 2**33),
        "modification_date": st.integers(0, 2**33),
        "assets": st.lists(
            st.fixed_dictionaries(
                {"type": _text, "uri": _text, "name": _text, "ext": _text},
                optional={"x_more": _json},
            ),
            max_size=2,
        ),
        "x_unknown_field": _json,
    },
)


@settings(max_examples=150, database=None, deadline=None)
@given(data=_data)
def test_any_v3_card_exports_exactly_as_it_came(
    data: dict[str, Any], tmp_path: Path, png_kit: Any
) -> None:
    original = {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}
    card = read_card(json.loads(json.dumps(original)), "any.json")
    assert card_to_v3(card) == original
    path = tmp_path / "card.png"
    path.write_bytes(card_png(card, png_kit.png()))
    assert card_to_v3(_card(load_card(path, persona_id="any"))) == original
