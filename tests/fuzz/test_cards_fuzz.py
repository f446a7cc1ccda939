"""Fuzzing persona card files (hypothesis): TOML cards, SillyTavern JSON (V1/V2/V3) and
PNG cards, through the loaders ``personabridge personas import`` and the persona
library use (:func:`load_card`, :meth:`PersonaLibrary.from_directory`).

Whatever a file holds, loading it gives a valid persona or a :class:`PersonaError` that
names the file (and the field, where there is one): never another exception, never a
hang, and memory stays bounded whatever lengths a PNG declares. A persona that loads can
be written back as a TOML card that loads the same (what ``personas import`` does).
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import tracemalloc
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from bot.errors import PersonaError
from bot.personas import Persona, PersonaLibrary, export_toml, load_card, parse_toml

#: Every example writes to the test's own tmp_path: sharing it between examples is meant.
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
TEXT_FIELDS = (
    "greeting",
    "description",
    "personality",
    "scenario",
    "system_prompt",
    "post_history_instructions",
)
LIST_FIELDS = ("alternate_greetings", "knowledge", "fallback", "tags")

# -- what every load must give ----------------------------------------------------------


def load_or_error(path: Path, persona_id: str | None = None) -> Persona | PersonaError:
    """Load ``path`` as the CLI and the library do; any exception but PersonaError fails
    the test by escaping."""
    try:
        persona = load_card(path, persona_id=persona_id)
    except PersonaError as error:
        count(f"PersonaError, field {error.field is not None}")
        assert_names_the_file(error, path)
        return error
    count("Persona")
    assert_sound(persona, path)
    if persona_id is None:
        library_outcome(path.parent, persona)
    return persona


def count(outcome: str) -> None:
    """Tally outcomes for ``--hypothesis-show-statistics`` (inside a hypothesis test)."""
    if currently_in_test_context():
        event(outcome)


def assert_names_the_file(error: PersonaError, path: Path) -> None:
    assert error.source == str(path), error
    assert str(error).startswith(f"{path}: "), error
    if error.field is not None:
        assert f"field {error.field!r}" in str(error), error
    assert "Traceback" not in str(error)


def assert_sound(persona: Persona, path: Path) -> None:
    """A loaded persona: a valid id, a name, text that can be written out as UTF-8, and a
    TOML card of it that loads back the same (``personas import`` writes one)."""
    assert ID.fullmatch(persona.id), persona.id
    assert persona.name.strip() and persona.source == str(path)
    texts = [persona.name, *(getattr(persona, f) for f in TEXT_FIELDS)]
    texts += [item for f in LIST_FIELDS for item in getattr(persona, f)]
    texts += [side for exchange in persona.examples for side in (exchange.user, exchange.char)]
    for text in texts:
        assert isinstance(text, str)
        text.encode("utf-8")  # no lone surrogates
    written = export_toml(persona)
    again = parse_toml(written, "exported.toml")
    assert repr(again) == repr(replace(persona, source="exported.toml")), written


def library_outcome(directory: Path, persona: Persona) -> None:
    """The persona library reads the same directory to the same persona."""
    library = PersonaLibrary.from_directory(directory)
    assert [p.id for p in library] == [persona.id]


@pytest.fixture
def card_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "personas"
    directory.mkdir()
    return directory


def write(directory: Path, name: str, data: bytes) -> Path:
    for old in directory.iterdir():  # one card at a time: the library sees this one
        old.unlink()
    path = directory / name
    path.write_bytes(data)
    return path


# -- hostile values ---------------------------------------------------------------------

weird_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),  # lone surrogates
        st.sampled_from("\x00\r\n\t\x7f\u202e\ufeff\"'\\{}[]<>:"),
    ),
    max_size=30,
)
hostile_text = st.one_of(
    st.text(max_size=40),
    weird_text,
    st.sampled_from(
        ["", " ", "{{char}}", "{{user}}: hi\n{{char}}: hello", "<START>", "\ud800", "ada"]
    ),
    st.sampled_from([5_000, 100_000]).map(lambda n: "w" * n),  # huge
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile_text),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

# -- TOML cards -------------------------------------------------------------------------

toml_scalars = st.one_of(
    hostile_text,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.datetimes(),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
card_id = st.one_of(
    st.from_regex(ID, fullmatch=True), st.from_regex(ID, fullmatch=True), hostile_text
)
exchange = st.fixed_dictionaries({"user": hostile_text, "char": hostile_text})
RIGHT_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "id": card_id,
    "name": st.one_of(st.text(min_size=1, max_size=30), hostile_text),
    **dict.fromkeys(TEXT_FIELDS, hostile_text),
    **dict.fromkeys(LIST_FIELDS, st.lists(hostile_text, max_size=3)),
    "creator": hostile_text,
    "backend": st.sampled_from(["offline", "openai", "characterai"]),
    "backend_options": st.dictionaries(st.text(max_size=10), toml_values, max_size=4),
    "example": st.lists(exchange, max_size=3),
}


def toml_value(value: Any) -> str:
    """``value`` in TOML syntax, written by hand so hostile values stay hostile (a lone
    surrogate is written as an escape TOML forbids, a NaN as ``nan``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{json.dumps(key, ensure_ascii=False)} = {toml_value(v)}" for key, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    return value.isoformat()  # dates and datetimes


def toml_text(card: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in card.items())


@st.composite
def toml_cards(draw: st.DrawFn) -> bytes:
    """TOML text: a card's keys with right or wrong types, missing or unknown keys, huge
    and unicode values; sometimes damaged, nested absurdly deep or not UTF-8."""
    keys = draw(st.lists(st.sampled_from(sorted(RIGHT_TYPES)), unique=True))
    if draw(st.integers(0, 4)):  # mostly with the two required keys
        keys = ["id", "name", *(key for key in keys if key not in ("id", "name"))]
    wrong = (
        draw(st.lists(st.sampled_from(keys), max_size=2)) if keys and draw(st.booleans()) else []
    )
    card = {key: draw(toml_values if key in wrong else RIGHT_TYPES[key]) for key in keys}
    if draw(st.integers(0, 5)) == 0:
        card[draw(st.text(min_size=1, max_size=10))] = draw(toml_values)  # unknown key
    text = toml_text(card)
    damage = draw(st.sampled_from(["none"] * 10 + ["cut", "insert", "deep", "bigint"]))
    if damage == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "insert":
        where = draw(st.integers(0, len(text)))
        text = text[:where] + draw(weird_text) + text[where:]
    elif damage == "deep":
        depth = draw(st.integers(1, 3000))
        text += "backend_options = {x = " + "[" * depth + "]" * depth + "}\n"
    elif damage == "bigint":
        text += f"backend_options = {{n = {'9' * draw(st.integers(1, 6000))}}}\n"
    return text.encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=200)
@given(data=toml_cards())
def test_toml_cards_load_or_fail_clearly(card_dir: Path, data: bytes) -> None:
    load_or_error(write(card_dir, "card.toml", data))


VALID_TOML_CARD: dict[str, Any] = {
    "id": "nell",
    "name": "Keeper Nell",
    "greeting": "Welcome, {{user}}.",
    "tags": ["sea"],
    "knowledge": ["The lamp turns every ten seconds."],
    "backend_options": {"temperature": 0.7},
    "example": [{"user": "Hi", "char": "Hello."}],
}
WRONG_TYPES = st.one_of(
    st.integers(), st.booleans(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)
)


@settings(FUZZ, max_examples=40)
@given(key=st.sampled_from(["id", "name", *TEXT_FIELDS, "creator", "backend"]), wrong=WRONG_TYPES)
def test_a_toml_string_field_of_another_type_is_named(
    card_dir: Path, key: str, wrong: object
) -> None:
    path = write(card_dir, "card.toml", toml_text({**VALID_TOML_CARD, key: wrong}).encode())
    error = load_or_error(path)
    assert isinstance(error, PersonaError) and error.field == key, error


@settings(FUZZ, max_examples=40)
@given(
    key=st.sampled_from([*LIST_FIELDS, "example"]),
    wrong=st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), st.text()),
    index=st.integers(0, 2),
    item=WRONG_TYPES,
)
def test_a_toml_list_field_of_another_type_is_named(
    card_dir: Path, key: str, wrong: object, index: int, item: object
) -> None:
    whole = write(card_dir, "card.toml", toml_text({**VALID_TOML_CARD, key: wrong}).encode())
    error = load_or_error(whole)
    assert isinstance(error, PersonaError) and error.field == key, error
    good: object = {"user": "a", "char": "b"} if key == "example" else "fine"
    items = [good] * index + [item]
    one = write(card_dir, "card.toml", toml_text({**VALID_TOML_CARD, key: items}).encode())
    error = load_or_error(one)
    assert isinstance(error, PersonaError) and error.field == f"{key}[{index}]", error


# -- SillyTavern JSON cards -------------------------------------------------------------

CARD_TEXT_FIELDS = (
    "name",
    "nickname",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "system_prompt",
    "post_history_instructions",
    "creator",
)
V1_NAMES = ("char_name", "char_persona", "world_scenario", "char_greeting", "example_dialogue")
SPECS = {"v2": ("chara_card_v2", "2.0"), "v3": ("chara_card_v3", "3.0")}
V1_FIELDS = dict(
    zip(("name", "description", "scenario", "first_mes", "mes_example"), V1_NAMES, strict=True)
)


@st.composite
def card_objects(draw: st.DrawFn) -> Any:
    """A card as parsed JSON: V1, V2 or V3 with string fields that are often hostile text
    (and, in about half the cards, one or two fields of another JSON type); or any JSON."""
    version = draw(st.sampled_from(["v2", "v2", "v3", "v3", "v1", "json"]))
    if version == "json":
        return draw(json_values)
    fields = draw(st.lists(st.sampled_from(CARD_TEXT_FIELDS[1:]), unique=True, max_size=6))
    data: dict[str, Any] = {"name": draw(st.one_of(st.text(min_size=1, max_size=20), hostile_text))}
    data.update({field: draw(hostile_text) for field in fields})
    if draw(st.booleans()):
        data["alternate_greetings"] = draw(st.lists(hostile_text, max_size=3))
        data["tags"] = draw(st.lists(hostile_text, max_size=3))
    if draw(st.booleans()):
        entry = st.fixed_dictionaries(
            {"content": hostile_text}, optional={"enabled": st.booleans()}
        )
        data["character_book"] = {"entries": draw(st.lists(entry, max_size=3))}
    if draw(st.booleans()):  # a field or two of another type, anywhere in the card
        paths = [[key] for key in data] + [["character_book", "entries"], ["tags"]]
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=2)):
            target = data
            for key in path[:-1]:
                target = target.setdefault(key, {}) if isinstance(target.get(key, {}), dict) else {}
            target[path[-1]] = draw(json_values)
    if version == "v1":
        return {
            V1_FIELDS.get(key, key) if draw(st.booleans()) else key: value
            for key, value in data.items()
        }
    spec, spec_version = SPECS[version]
    card: dict[str, Any] = {"spec": spec, "spec_version": spec_version, "data": data}
    if draw(st.integers(0, 4)) == 0:  # the envelope itself is wrong
        card[draw(st.sampled_from(["spec", "spec_version", "data"]))] = draw(json_values)
    return card


@st.composite
def json_cards(draw: st.DrawFn) -> bytes:
    card = draw(card_objects())
    ascii_only = draw(st.booleans())
    data = json.dumps(card, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 10 + ["bom", "cut", "bytes", "deep"]))
    if damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "bytes":
        data = draw(st.binary(max_size=100))
    elif damage == "deep":
        data = b"[" * draw(st.integers(1, 50_000))
    return data


persona_ids = st.one_of(st.none(), st.none(), st.from_regex(ID, fullmatch=True), hostile_text)


@settings(FUZZ, max_examples=200)
@given(data=json_cards(), persona_id=persona_ids)
def test_json_cards_load_or_fail_clearly(
    card_dir: Path, data: bytes, persona_id: str | None
) -> None:
    outcome = load_or_error(write(card_dir, "card.json", data), persona_id)
    if isinstance(outcome, Persona) and persona_id is not None:
        assert outcome.id == persona_id
    if persona_id is not None and not ID.fullmatch(persona_id):
        assert isinstance(outcome, PersonaError)


VALID_V2: dict[str, Any] = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {"name": "Keeper Nell", "first_mes": "Hi {{user}}", "tags": ["sea"]},
}


@settings(FUZZ, max_examples=40)
@given(
    key=st.sampled_from(CARD_TEXT_FIELDS),
    wrong=st.one_of(st.integers(), st.booleans(), st.floats(), st.lists(st.text(), max_size=2)),
    spec=st.sampled_from(["chara_card_v2", "chara_card_v3"]),
)
def test_a_card_field_of_another_type_is_named(
    card_dir: Path, key: str, wrong: object, spec: str
) -> None:
    card = {**VALID_V2, "spec": spec, "spec_version": spec[-1] + ".0"}
    card["data"] = {**VALID_V2["data"], key: wrong}
    error = load_or_error(write(card_dir, "card.json", json.dumps(card).encode()))
    assert isinstance(error, PersonaError) and error.field == f"data.{key}", error


# -- PNG cards --------------------------------------------------------------------------


def chunk(kind: bytes, body: bytes, *, crc: int | None = None, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    crc = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", length) + kind + body + struct.pack(">I", crc)


def text_chunk(kind: bytes, keyword: bytes, text: bytes) -> bytes:
    if kind == b"tEXt":
        return chunk(kind, keyword + b"\0" + text)
    if kind == b"zTXt":
        return chunk(kind, keyword + b"\0\0" + zlib.compress(text))
    return chunk(kind, keyword + b"\0\1\0en\0\0" + zlib.compress(text))


def png(*chunks: bytes) -> bytes:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return PNG_SIGNATURE + ihdr + b"".join(chunks) + idat + chunk(b"IEND", b"")


@st.composite
def card_payloads(draw: st.DrawFn) -> bytes:
    """What a ``chara`` chunk carries: base64 of a card, of non-JSON, of JSON of the
    wrong shape, or broken base64."""
    kind = draw(st.sampled_from(["card", "card", "json", "bytes", "broken", "text"]))
    if kind == "card":
        raw = json.dumps(draw(card_objects())).encode("utf-8", "surrogatepass")
    elif kind == "json":
        raw = json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        raw = draw(st.binary(max_size=60))
    else:
        text = draw(st.text(st.characters(max_codepoint=255), max_size=60))
        return text.encode("latin-1") if kind == "text" else base64.b64encode(b"x" * 9) + b"!$"
    encoded = base64.b64encode(raw)
    if draw(st.booleans()):  # wrapped lines, as some writers do
        encoded = b"\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return encoded


@st.composite
def png_files(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["card"] * 5 + ["random", "signature-only"]))
    if shape == "random":
        return draw(st.binary(max_size=200))
    if shape == "signature-only":
        return PNG_SIGNATURE + draw(st.binary(max_size=200))
    chunks = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt"]))
        keyword = draw(st.sampled_from([b"chara", b"ccv3", b"Chara", b"comment", b"", b"x" * 80]))
        chunks.append(text_chunk(kind, keyword, draw(card_payloads())))
    if draw(st.integers(0, 4)) == 0:  # a damaged chunk
        body = draw(st.binary(max_size=40))
        kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"IHDR", b"abcd"]))
        crc = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
        length = draw(st.one_of(st.none(), st.sampled_from([0, 1, 2**31, 2**32 - 1])))
        chunks.insert(draw(st.integers(0, len(chunks))), chunk(kind, body, crc=crc, length=length))
    data = png(*chunks)
    if draw(st.integers(0, 4)) == 0:  # truncated anywhere
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(FUZZ, max_examples=200)
@given(data=png_files())
def test_png_cards_load_or_fail_clearly(card_dir: Path, data: bytes) -> None:
    load_or_error(write(card_dir, "card.png", data))


# -- memory and time stay bounded -------------------------------------------------------

MIB = 1024 * 1024


def peak_memory_of(path: Path) -> tuple[Persona | PersonaError, int]:
    tracemalloc.start()
    try:
        outcome = load_or_error(path)
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [2**31, 2**32 - 1, 10 * MIB])
def test_a_huge_declared_chunk_length_allocates_nothing(card_dir: Path, length: int) -> None:
    body = b"chara\0" + base64.b64encode(json.dumps(VALID_V2).encode())
    data = png(chunk(b"tEXt", body, length=length))
    outcome, peak = peak_memory_of(write(card_dir, "huge.png", data))
    assert isinstance(outcome, PersonaError) and "truncated PNG chunk" in str(outcome)
    assert peak < MIB, peak


def test_compressed_chunks_that_are_no_card_are_not_inflated(card_dir: Path) -> None:
    """Each zTXt chunk may inflate to 16 MiB; a file with many would have taken that
    many times 16 MiB of memory before only the card's own chunks were read."""
    bomb = zlib.compress(b"\0" * (16 * MIB - 1), 9)  # about 16 KiB on disk
    card = base64.b64encode(json.dumps(VALID_V2).encode())
    chunks = [chunk(b"zTXt", b"comment%d\0\0" % i + bomb) for i in range(6)]
    data = png(
        *chunks,
        *(chunk(b"zTXt", b"chara\0\0" + bomb) for _ in range(2)),
        text_chunk(b"tEXt", b"ccv3", card),
    )
    outcome, peak = peak_memory_of(write(card_dir, "bomb.png", data))
    assert isinstance(outcome, Persona) and outcome.name == "Keeper Nell"
    assert peak < 40 * MIB, f"{peak / MIB:.0f} MiB"


def test_a_chunk_inflating_past_the_cap_is_refused(card_dir: Path) -> None:
    data = png(chunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (16 * MIB + 1), 9)))
    outcome, peak = peak_memory_of(write(card_dir, "big.png", data))
    assert isinstance(outcome, PersonaError) and "too large" in str(outcome)
    assert peak < 40 * MIB, f"{peak / MIB:.0f} MiB"
    assert outcome.source == str(card_dir / "big.png")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('id = "a"\nname = "b"\nx = ' + "[" * 5000 + "]" * 5000, id="deep-array"),
        pytest.param(
            'id = "a"\nname = "b"\nbackend_options = ' + "{a = " * 3000 + "1" + "}" * 3000,
            id="deep-table",
        ),
        pytest.param(
            'id = "a"\nname = "b"\nbackend_options = {n = ' + "1" * 5000 + "}", id="bigint"
        ),
    ],
)
def test_toml_that_python_cannot_parse_is_a_persona_error(card_dir: Path, text: str) -> None:
    """Found by the fuzzer: tomllib raises RecursionError and ValueError, not only
    TOMLDecodeError, for these."""
    path = write(card_dir, "card.toml", text.encode())
    error = load_or_error(path)
    assert isinstance(error, PersonaError) and "bad TOML" in str(error)


def test_a_chara_chunk_with_non_ascii_bytes_is_bad_base64(card_dir: Path) -> None:
    """Found by the fuzzer: base64 of a str with non-ASCII characters raised ValueError,
    not binascii.Error."""
    path = write(card_dir, "card.png", png(text_chunk(b"tEXt", b"chara", b"eyJ\xe9")))
    error = load_or_error(path)
    assert isinstance(error, PersonaError) and error.field == "chara", error
    assert "bad base64" in str(error)


@pytest.mark.parametrize("name", ["card.json", "card.png", "card.toml"])
def test_an_empty_persona_id_is_refused_for_every_kind_of_card(card_dir: Path, name: str) -> None:
    """``personas import --id ''`` was ignored for JSON and PNG cards (the card's name
    was used instead) but refused for TOML cards."""
    card = json.dumps(VALID_V2).encode()
    data = {
        "card.json": card,
        "card.png": png(text_chunk(b"tEXt", b"chara", base64.b64encode(card))),
        "card.toml": toml_text(VALID_TOML_CARD).encode(),
    }[name]
    error = load_or_error(write(card_dir, name, data), persona_id="")
    assert isinstance(error, PersonaError) and error.field == "id", error
