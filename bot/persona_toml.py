"""TOML persona cards, PersonaBridge's native format (see ``personas/ada.toml``).

A TOML card has every field a V3 card has, under the spec's names, except that the
greeting is ``greeting`` and the lorebook is written as ``[[lorebook]]`` entries (the
book's own settings in ``[lorebook_settings]``), assets as ``[[asset]]``, example
exchanges as ``[[example]]`` tables (``user``/``char``) and/or a ``mes_example`` text.
PersonaBridge's options (``backend``, ``fallback``, ``backend_options``,
``knowledge``, ``voice``) are top-level keys; exported as a V3 card, they go to the card's
``extensions.personabridge``. Unknown keys are errors (with a "did you mean").

:func:`export_toml` writes a persona back as TOML that :func:`parse_toml` reads equal.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from bot.card_export import lorebook_to_json
from bot.card_model import CharacterCard
from bot.card_reader import LORE_ENTRY_KEYS, read_card
from bot.dialogue import ExampleLine, blocks_text, exchanges
from bot.errors import PersonaError
from bot.persona_model import EXTENSION_KEY, Exchange, Persona, PersonaOptions, build_persona

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
_TEXT_FIELDS = (
    "greeting",
    "description",
    "personality",
    "scenario",
    "system_prompt",
    "post_history_instructions",
)
_CARD_TEXTS = ("nickname", "creator_notes", "character_version", "mes_example")
_CARD_LISTS = ("group_only_greetings", "source")
_OPTION_LISTS = ("knowledge", "fallback")
_TOML_KEYS = ("id", "name", "creator", "tags", "backend", "fallback", "voice", *_TEXT_FIELDS)
_KNOWN_KEYS = frozenset(
    (
        *_TOML_KEYS,
        "alternate_greetings",
        "knowledge",
        "backend_options",
        "example",
        *_CARD_TEXTS,
        *_CARD_LISTS,
        "creator_notes_multilingual",
        "creation_date",
        "modification_date",
        "extensions",
        "asset",
        "lorebook",
        "lorebook_settings",
    )
)
_BOOK_KEYS = frozenset(
    ("name", "description", "scan_depth", "token_budget", "recursive_scanning", "extensions")
)
_ASSET_KEYS = frozenset(("type", "uri", "name", "ext"))


def check_id(persona_id: str, source: str | None = None) -> str:
    """``persona_id`` if it is a valid persona id, else a PersonaError."""
    if not _ID.fullmatch(persona_id):
        raise PersonaError(
            f"invalid id {persona_id!r}: use a-z, 0-9, '-' and '_', at most 48 characters",
            source=source,
            field="id",
        )
    return persona_id


def parse_toml(
    text: str,
    source: str = "<string>",
    *,
    default_backend: str = "offline",
    sidecar: PersonaOptions | None = None,
) -> Persona:
    """A persona from the text of a TOML card; unknown keys and wrong types are errors.
    ``sidecar``: options (from an imported card's sidecar file) over the card's own."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"bad TOML: {exc}", source=source) from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise PersonaError(f"bad TOML: {exc}", source=source) from exc
    except RecursionError as exc:  # arrays or tables nested thousands deep
        raise PersonaError("bad TOML: nested too deeply", source=source) from exc
    _check_keys(data, _KNOWN_KEYS, "", source)
    check = _Checker(source)
    for key in ("id", "name"):
        if not check(key, data.get(key, ""), str, "a string").strip():
            raise PersonaError(f"{key} is required", source=source, field=key)
    pairs = []
    for i, table in enumerate(check("example", data.get("example", []), list, "[[example]]")):
        check(f"example[{i}]", table, dict, "a table with user and char")
        if extra := sorted(table.keys() - {"user", "char"}):
            field_name = f"example[{i}].{extra[0]}"
            raise PersonaError(f"unknown key {extra[0]!r}", source=source, field=field_name)
        user, char = (
            check(f"example[{i}].{k}", table.get(k), str, "a string") for k in ("user", "char")
        )
        pairs.append(Exchange(user, char))
    options = PersonaOptions(
        backend=check("backend", data["backend"], str, "a string") if "backend" in data else None,
        fallback=check.strings(data, "fallback") if "fallback" in data else None,
        backend_options=(
            dict(check("backend_options", data["backend_options"], dict, "a table"))
            if "backend_options" in data
            else None
        ),
        knowledge=check.strings(data, "knowledge") if "knowledge" in data else None,
        voice=check("voice", data["voice"], str, "a string").strip() if "voice" in data else None,
    )
    if sidecar is not None:
        options = sidecar.over(options)
    mes_example = check("mes_example", data.get("mes_example", ""), str, "a string")
    card = _card(data, check, pairs, options, source)
    return build_persona(
        card,
        persona_id=check_id(data["id"], source),
        source=source,
        options=options,
        default_backend=default_backend,
        strip=False,
        pairs=tuple(pairs),
        mes_example=mes_example,
    )


def _card(
    data: dict[str, Any],
    check: _Checker,
    pairs: list[Exchange],
    options: PersonaOptions,
    source: str,
) -> CharacterCard:
    """The TOML card as a V3 card object, read (and checked) like an imported one."""
    card: dict[str, Any] = {"name": data["name"], "first_mes": data.get("greeting", "")}
    for key in (*_TEXT_FIELDS[1:], *_CARD_TEXTS, "creator"):
        card[key] = check(key, data.get(key, ""), str, "a string")
    for key in ("alternate_greetings", "tags", *_CARD_LISTS):
        if key in data or key != "source":
            card[key] = list(check.strings(data, key))
    for key in ("creation_date", "modification_date"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PersonaError("expected a number (unix seconds)", source=source, field=key)
            card[key] = value
    if "creator_notes_multilingual" in data:
        key = "creator_notes_multilingual"
        notes = check(key, data[key], dict, "a table of strings")
        card["creator_notes_multilingual"] = notes
    own_blocks = tuple(
        (ExampleLine("user", p.user), ExampleLine("char", p.char))
        for p in pairs
        if p.user.strip() or p.char.strip()
    )
    card["mes_example"] = "\n".join(t for t in (blocks_text(own_blocks), card["mes_example"]) if t)
    extensions = dict(check("extensions", data.get("extensions", {}), dict, "a table"))
    if ours := options.as_json():
        extensions[EXTENSION_KEY] = {**extensions.get(EXTENSION_KEY, {}), **ours}
    card["extensions"] = _json(extensions)
    if "asset" in data:
        assets = check("asset", data["asset"], list, "[[asset]] tables")
        for i, asset in enumerate(assets):
            _check_keys(
                check(f"asset[{i}]", asset, dict, "a table"), _ASSET_KEYS, f"asset[{i}].", source
            )
        card["assets"] = assets
    if "lorebook" in data or "lorebook_settings" in data:
        card["character_book"] = _book(data, check, source)
    try:
        return read_card({"spec": "chara_card_v3", "spec_version": "3.0", "data": card}, source)
    except PersonaError as exc:
        raise PersonaError(
            str(exc.args[0]) if exc.args else str(exc), source=source, field=_toml_field(exc.field)
        ) from exc


def _book(data: dict[str, Any], check: _Checker, source: str) -> dict[str, Any]:
    settings = check("lorebook_settings", data.get("lorebook_settings", {}), dict, "a table")
    _check_keys(settings, _BOOK_KEYS, "lorebook_settings.", source)
    entries = check("lorebook", data.get("lorebook", []), list, "[[lorebook]] tables")
    for i, entry in enumerate(entries):
        check(f"lorebook[{i}]", entry, dict, "a table")
        _check_keys(entry, LORE_ENTRY_KEYS, f"lorebook[{i}].", source)
    book: dict[str, Any] = _json({**settings, "entries": entries})
    return book


def _toml_field(field: str | None) -> str | None:
    if field is None:
        return None
    field = field.removeprefix("data.")
    field = field.replace("character_book.entries[", "lorebook[")
    field = field.replace("character_book.", "lorebook_settings.")
    return "greeting" if field == "first_mes" else field


def _check_keys(table: Mapping[str, Any], known: frozenset[str], prefix: str, source: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PersonaError(f"unknown key {key!r}{hint}", source=source, field=prefix + key)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind):
            raise PersonaError(
                f"expected {what}, got {type(value).__name__}", source=self.source, field=key
            )
        return value

    def strings(self, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        items = self(key, data.get(key, []), list, "a list of strings")
        return tuple(self(f"{key}[{i}]", v, str, "a string") for i, v in enumerate(items))


def _json(value: Any) -> Any:
    """TOML values as JSON values: dates and times become ISO text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def export_toml(persona: Persona) -> str:
    """Write ``persona`` as a TOML card that :func:`parse_toml` reads back unchanged
    (except ``source``). JSON ``null`` values in extensions have no TOML form and drop."""
    card = persona.card
    lines = ["# PersonaBridge persona card"]
    for key in _TOML_KEYS:
        value = getattr(persona, key)
        if value or key in ("id", "name", "backend"):
            lines.append(f"{key} = {_toml_value(value)}")
    for key in ("nickname", "creator_notes", "mes_example"):
        if value := getattr(persona, key):
            lines.append(f"{key} = {_toml_value(value)}")
    if card is not None:
        for key in ("character_version", "creation_date", "modification_date", "source"):
            if (value := getattr(card, key)) not in (None, ""):
                lines.append(f"{key} = {_toml_value(value)}")
    for key in ("alternate_greetings", "group_only_greetings", "knowledge"):
        if items := getattr(persona, key):
            lines += [f"{key} = [", *(f"    {_toml_value(item)}," for item in items), "]"]
    if card is not None and card.creator_notes_multilingual is not None:
        lines.append(f"creator_notes_multilingual = {_toml_value(card.creator_notes_multilingual)}")
    if persona.backend_options:
        lines += ["", "[backend_options]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in persona.backend_options.items()]
    extensions = {k: v for k, v in (card.extensions if card else {}).items() if k != EXTENSION_KEY}
    if extensions:
        lines += ["", "[extensions]"]
        lines += [
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in extensions.items() if v is not None
        ]
    own = len(persona.examples) - len(exchanges(persona.example_blocks))
    for exchange in persona.examples[: max(own, 0)]:
        lines += ["", "[[example]]", f"user = {_toml_value(exchange.user)}"]
        lines.append(f"char = {_toml_value(exchange.char)}")
    if card is not None and card.assets is not None:
        for asset in card.assets:
            lines += ["", "[[asset]]"]
            lines += [
                f"{k} = {_toml_value(v)}"
                for k in ("type", "uri", "name", "ext")
                if (v := getattr(asset, k)) is not None
            ]
    if persona.lorebook is not None:
        book = lorebook_to_json(persona.lorebook)
        entries = book.pop("entries")
        settings = {k: v for k, v in book.items() if k in _BOOK_KEYS and v not in (None, {})}
        if settings or not entries:  # an empty book is still a book
            lines += ["", "[lorebook_settings]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in settings.items()]
        for entry in entries:
            lines += ["", "[[lorebook]]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v)}"
                for k, v in entry.items()
                if k in LORE_ENTRY_KEYS and v is not None and not (k == "extensions" and v == {})
            ]
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
        items = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{ " + items + " }" if items else "{}"
    raise PersonaError(f"cannot write a {type(value).__name__} as TOML", field="backend_options")
