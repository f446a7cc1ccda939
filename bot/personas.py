"""Persona cards: the model, TOML cards and SillyTavern Character Card V2/V3 import.

A persona is read from a TOML card (the native format, see ``personas/ada.toml``) or
imported from a SillyTavern card (``.json``, or ``.png`` carrying it; :mod:`bot.cards`).
Cards load at startup, off the event loop. :func:`export_toml` writes a persona back
as a TOML card, so an imported card can be saved into the personas directory.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot import cards
from bot.errors import PersonaError, UnknownPersona

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
#: The persona the project ships as its default: it stays the default whatever cards are
#: imported next to it, unless ``DEFAULT_PERSONA`` names another.
PROJECT_DEFAULT_PERSONA = "ada"
#: The file kinds :func:`load_card` reads, by suffix.
CARD_SUFFIXES = (".toml", ".json", ".png")
_TEXT_FIELDS = (
    "greeting",
    "description",
    "personality",
    "scenario",
    "system_prompt",
    "post_history_instructions",
)
_LIST_FIELDS = ("alternate_greetings", "knowledge", "fallback", "tags")
_TOML_KEYS = ("id", "name", "creator", "tags", "backend", "fallback", *_TEXT_FIELDS)
_KNOWN_KEYS = frozenset((*_TOML_KEYS, *_LIST_FIELDS, "backend_options", "example"))


@dataclass(frozen=True, slots=True)
class Exchange:
    """One example exchange: what a user says and how the persona answers."""

    user: str
    char: str


@dataclass(frozen=True, slots=True)
class Persona:
    """A persona card, whatever file it came from. Text fields keep their ``{{char}}``
    and ``{{user}}`` macros; :meth:`expand` fills them in for one user."""

    id: str
    name: str
    greeting: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    examples: tuple[Exchange, ...] = ()
    knowledge: tuple[str, ...] = ()
    alternate_greetings: tuple[str, ...] = ()
    backend: str = "offline"
    backend_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fallback: tuple[str, ...] = ()
    creator: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""

    def expand(self, text: str, user: str) -> str:
        """Replace ``{{char}}``/``<BOT>`` with the persona's name and ``{{user}}``/``<USER>``
        with the user's display name (case-insensitive)."""

        def substitute(match: re.Match[str]) -> str:
            which = (match.group(1) or match.group(2)).lower()
            return self.name if which in ("char", "bot") else user

        return _MACRO.sub(substitute, text)


class PersonaLibrary:
    """The personas of one directory, by id, in a stable order (file name).

    The default is ``default_id`` when given, else the project's own default persona
    (:data:`PROJECT_DEFAULT_PERSONA`), and only when that card is gone the first by file
    name: importing a card never changes who new users meet. :meth:`replace_with` swaps
    in a reloaded set, so whoever holds the library sees the new cards.
    """

    def __init__(self, personas: Iterable[Persona], default_id: str | None = None):
        self.default_id = default_id
        self._by_id, self._default = self._index(personas, default_id)
        #: Counts replacements: whatever is derived from the cards (a cached page) is
        #: stale when this has moved on.
        self.version = 0

    @staticmethod
    def _index(
        personas: Iterable[Persona], default_id: str | None
    ) -> tuple[dict[str, Persona], Persona]:
        by_id: dict[str, Persona] = {}
        for persona in personas:
            if (first := by_id.get(persona.id)) is not None:
                raise PersonaError(
                    f"duplicate persona id {persona.id!r}, also used by {first.source or '?'}",
                    source=persona.source or None,
                    field="id",
                )
            by_id[persona.id] = persona
        if not by_id:
            raise PersonaError("no personas were found")
        if default_id is not None and default_id not in by_id:
            raise UnknownPersona(default_id)
        if default_id is None and PROJECT_DEFAULT_PERSONA in by_id:
            default_id = PROJECT_DEFAULT_PERSONA
        return by_id, by_id[default_id or next(iter(by_id))]

    def replace_with(self, personas: Iterable[Persona]) -> None:
        """Serve ``personas`` from now on (same default rule); on an error (a duplicate
        id, the default persona missing) nothing changes."""
        self._by_id, self._default = self._index(personas, self.default_id)
        self.version += 1

    @property
    def default_reason(self) -> str:
        """Why the default is the default, for the people choosing it."""
        if self.default_id is not None:
            return "set by PERSONABRIDGE_DEFAULT_PERSONA"
        if self._default.id == PROJECT_DEFAULT_PERSONA:
            return "the project's default; PERSONABRIDGE_DEFAULT_PERSONA changes it"
        return (
            f"the first card by file name, as {PROJECT_DEFAULT_PERSONA}.toml is missing; "
            "PERSONABRIDGE_DEFAULT_PERSONA makes it stay"
        )

    @classmethod
    def from_directory(cls, directory: Path, default_id: str | None = None) -> PersonaLibrary:
        """Load every card of ``directory`` in file-name order."""
        return cls([load_card(path) for path in card_files(directory)], default_id)

    def get(self, persona_id: str) -> Persona:
        """The persona with this id; :class:`~bot.errors.UnknownPersona` if none."""
        if (persona := self._by_id.get(persona_id)) is None:
            raise UnknownPersona(persona_id)
        return persona

    def find(self, persona_id: str) -> Persona | None:
        """The persona with this id, or ``None``."""
        return self._by_id.get(persona_id)

    @property
    def default(self) -> Persona:
        """The persona new conversations start with."""
        return self._default

    def __iter__(self) -> Iterator[Persona]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


def card_files(directory: Path) -> list[Path]:
    """The card files of ``directory`` in file-name order (hidden files left out);
    PersonaError when it cannot be listed or holds none."""
    try:
        files = sorted(
            (
                path
                for path in Path(directory).iterdir()
                if path.suffix.lower() in CARD_SUFFIXES
                and not path.name.startswith(".")
                and path.is_file()
            ),
            key=lambda path: path.name,
        )
    except OSError as exc:
        raise PersonaError(f"cannot list personas: {exc}", source=str(directory)) from exc
    if not files:
        raise PersonaError(
            "no personas were found (expected .toml, .json or .png cards)",
            source=str(directory),
        )
    return files


def load_card(path: Path, *, persona_id: str | None = None) -> Persona:
    """Load a persona from a ``.toml`` card, a V2/V3 ``.json`` card or a ``.png`` card.

    ``persona_id`` overrides the id; an imported card's id is otherwise its name as a slug.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in CARD_SUFFIXES:
        raise PersonaError(f"unsupported card type {path.suffix!r}", source=source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonaError(f"cannot read card: {exc.strerror or exc}", source=source) from exc
    if suffix == ".toml":
        try:
            persona = parse_toml(raw.decode("utf-8"), source)
        except UnicodeDecodeError as exc:
            raise PersonaError(f"card is not UTF-8: {exc}", source=source) from exc
        return persona if persona_id is None else replace(persona, id=_check_id(persona_id, source))
    obj = (
        cards.card_from_png(raw, source) if suffix == ".png" else cards.card_from_json(raw, source)
    )
    return persona_from_card(obj, source=source, persona_id=persona_id)


def persona_from_card(obj: Any, *, source: str = "", persona_id: str | None = None) -> Persona:
    """A persona from a parsed SillyTavern V1/V2/V3 card."""
    card = cards.read_card(obj, source)
    fallback_id = cards.slugify(Path(source).stem) if source else ""
    return Persona(
        id=_check_id(
            persona_id if persona_id is not None else card.slug or fallback_id or "persona",
            source or None,
        ),
        name=card.name,
        greeting=card.greeting,
        description=card.description,
        personality=card.personality,
        scenario=card.scenario,
        system_prompt=card.system_prompt,
        post_history_instructions=card.post_history_instructions,
        examples=tuple(Exchange(user, char) for user, char in card.examples),
        knowledge=card.knowledge,
        alternate_greetings=card.alternate_greetings,
        creator=card.creator,
        tags=card.tags,
        source=source,
    )


def _check_id(persona_id: str, source: str | None = None) -> str:
    if not _ID.fullmatch(persona_id):
        raise PersonaError(
            f"invalid id {persona_id!r}: use a-z, 0-9, '-' and '_', at most 48 characters",
            source=source,
            field="id",
        )
    return persona_id


def parse_toml(text: str, source: str = "<string>") -> Persona:
    """A persona from the text of a TOML card; unknown keys and wrong types are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"bad TOML: {exc}", source=source) from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise PersonaError(f"bad TOML: {exc}", source=source) from exc
    except RecursionError as exc:  # arrays or tables nested thousands deep
        raise PersonaError("bad TOML: nested too deeply", source=source) from exc
    for key in data:
        if key not in _KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PersonaError(f"unknown key {key!r}{hint}", source=source, field=key)

    def check(key: str, value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind):
            raise PersonaError(
                f"expected {what}, got {type(value).__name__}", source=source, field=key
            )
        return value

    def strings(key: str) -> tuple[str, ...]:
        items = check(key, data.get(key, []), list, "a list of strings")
        return tuple(check(f"{key}[{i}]", v, str, "a string") for i, v in enumerate(items))

    for key in ("id", "name"):
        if not check(key, data.get(key, ""), str, "a string").strip():
            raise PersonaError(f"{key} is required", source=source, field=key)
    examples = []
    for i, table in enumerate(check("example", data.get("example", []), list, "[[example]]")):
        check(f"example[{i}]", table, dict, "a table with user and char")
        if extra := sorted(table.keys() - {"user", "char"}):
            field_name = f"example[{i}].{extra[0]}"
            raise PersonaError(f"unknown key {extra[0]!r}", source=source, field=field_name)
        user, char = (
            check(f"example[{i}].{k}", table.get(k), str, "a string") for k in ("user", "char")
        )
        examples.append(Exchange(user, char))
    options = check("backend_options", data.get("backend_options", {}), dict, "a table")
    return Persona(
        id=_check_id(data["id"], source),
        name=data["name"],
        **{key: check(key, data.get(key, ""), str, "a string") for key in _TEXT_FIELDS},
        examples=tuple(examples),
        knowledge=strings("knowledge"),
        alternate_greetings=strings("alternate_greetings"),
        backend=check("backend", data.get("backend", "offline"), str, "a string"),
        backend_options=MappingProxyType(options),
        fallback=strings("fallback"),
        creator=check("creator", data.get("creator", ""), str, "a string"),
        tags=strings("tags"),
        source=source,
    )


def export_toml(persona: Persona) -> str:
    """Write ``persona`` as a TOML card that :func:`parse_toml` reads back unchanged
    (except ``source``)."""
    lines = ["# PersonaBridge persona card"]
    for key in _TOML_KEYS:
        value = getattr(persona, key)
        if value or key in ("id", "name", "backend"):
            lines.append(f"{key} = {_toml_value(value)}")
    for key in ("alternate_greetings", "knowledge"):
        if items := getattr(persona, key):
            lines += [f"{key} = [", *(f"    {_toml_value(item)}," for item in items), "]"]
    if persona.backend_options:
        lines += ["", "[backend_options]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in persona.backend_options.items()]
    for exchange in persona.examples:
        lines += ["", "[[example]]", f"user = {_toml_value(exchange.user)}"]
        lines.append(f"char = {_toml_value(exchange.char)}")
    return "\n".join(lines) + "\n"


# TOML basic strings: escape quotes, backslashes and control characters.
_ESCAPES = {code: f"\\u{code:04X}" for code in (*range(0x20), 0x7F)} | {
    ord(char): "\\" + code for char, code in zip('"\\\b\t\n\f\r', '"\\btnfr', strict=True)
}
_MULTILINE_ESCAPES = _ESCAPES | {ord("\n"): "\n"}


def _toml_string(text: str, multiline: bool = True) -> str:
    # Multi-line basic strings keep long prompts readable; every quote and backslash
    # is escaped, so no run of quotes or line-ending backslash can end one early.
    text = text.encode("utf-8", "replace").decode("utf-8")  # drop lone surrogates
    if multiline and "\n" in text:
        return '"""\n' + text.translate(_MULTILINE_ESCAPES) + '"""'
    return '"' + text.translate(_ESCAPES) + '"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key, multiline=False)


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise PersonaError(f"cannot write a {type(value).__name__} as TOML", field="backend_options")
