"""Read a parsed V1/V2/V3 card JSON into a :class:`~bot.card_model.CharacterCard`.

Nothing is dropped. Fields the cards need to be usable (the name, the texts, the
greetings, a lorebook entry's keys and content) must have their spec's types, and a
wrong one is a :class:`~bot.errors.PersonaError` naming the field (``data.tags``).
Optional settings a card may carry in a form we cannot use (a ``priority`` written as
a string, say) are kept as written in the object's ``extra`` and written back on
export, so that even those survive a round trip.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from bot.card_model import Asset, CharacterCard, Lorebook, LoreEntry
from bot.errors import PersonaError

SPECS = {"chara_card_v2": 2, "chara_card_v3": 3}
# TavernAI/Pygmalion V1 cards used other names for the same fields.
V1_ALIASES = {
    "name": "char_name",
    "description": "char_persona",
    "scenario": "world_scenario",
    "first_mes": "char_greeting",
    "mes_example": "example_dialogue",
}
_CARD_TEXTS = (
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
)
_CARD_LISTS = ("alternate_greetings", "tags", "group_only_greetings")
_CARD_KEYS = frozenset(
    (
        "name",
        *_CARD_TEXTS,
        *_CARD_LISTS,
        "character_book",
        "extensions",
        "nickname",
        "creator_notes_multilingual",
        "source",
        "creation_date",
        "modification_date",
        "assets",
    )
)
#: The keys of a lorebook entry that the spec names (the rest is kept as ``extra``).
LORE_ENTRY_KEYS = frozenset(
    (
        "keys",
        "content",
        "extensions",
        "enabled",
        "insertion_order",
        "case_sensitive",
        "use_regex",
        "constant",
        "name",
        "priority",
        "id",
        "comment",
        "selective",
        "secondary_keys",
        "position",
    )
)
_BOOK_KEYS = frozenset(
    (
        "entries",
        "name",
        "description",
        "scan_depth",
        "token_budget",
        "recursive_scanning",
        "extensions",
    )
)


def read_card(obj: Any, source: str) -> CharacterCard:
    """Read a V1, V2 or V3 character card from its parsed JSON."""
    if not isinstance(obj, dict):
        raise PersonaError("not a character card (expected a JSON object)", source=source)
    reader = _Reader(source)
    if "spec" in obj:
        spec = reader.text(obj, "spec")
        if spec not in SPECS:
            raise PersonaError(f"unsupported card spec {spec!r}", source=source, field="spec")
        version = obj.get("spec_version")
        if version is not None and not _major_is(version, SPECS[spec]):
            raise PersonaError(
                f"unsupported spec_version {version!r} for {spec}",
                source=source,
                field="spec_version",
            )
        data = obj.get("data")
        if not isinstance(data, dict):
            raise PersonaError("card has no 'data' object", source=source, field="data")
        reader.prefix = "data."
        outer = {k: v for k, v in obj.items() if k not in ("spec", "spec_version", "data")}
        return reader.card(data, spec=spec, spec_version=_version_text(version), outer=outer)
    if any(key in obj for key in (*V1_ALIASES, *V1_ALIASES.values())):
        data = dict(obj)
        for key, alias in V1_ALIASES.items():
            if data.get(key) is None and alias in data:
                data[key] = data.pop(alias)
        return reader.card(data, spec="", spec_version="", outer={})
    raise PersonaError("not a character card (no 'spec' and no 'name')", source=source)


def _major_is(version: object, major: int) -> bool:
    if isinstance(version, bool) or not isinstance(version, str | int | float):
        return False
    return str(version).split(".")[0].strip() == str(major)


def _version_text(version: object) -> str:
    return "" if version is None else str(version)


def _clean(text: str) -> str:
    # json.loads lets lone surrogates through; they could never be written back out.
    return text.encode("utf-8", "replace").decode("utf-8")


def _json_copy(value: Any) -> Any:
    return copy.deepcopy(value)


class _Reader:
    """Typed access to a card's fields; errors name the field (``data.name``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.prefix = ""

    def fail(self, field: str, message: str) -> PersonaError:
        return PersonaError(message, source=self.source, field=self.prefix + field)

    def text(self, obj: Mapping[str, Any], key: str, where: str | None = None) -> str:
        value = obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(where or key, f"expected a string, got {type(value).__name__}")
        return _clean(value)

    def texts(self, obj: Mapping[str, Any], key: str, where: str | None = None) -> tuple[str, ...]:
        value = obj.get(key)
        where = where or key
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of strings, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{where}[{i}]", f"expected a string, got {type(item).__name__}")
        return tuple(_clean(item) for item in value)

    def card(
        self, data: Mapping[str, Any], *, spec: str, spec_version: str, outer: Mapping[str, Any]
    ) -> CharacterCard:
        name = self.text(data, "name")
        if not name.strip():
            raise self.fail("name", "the card has no name")
        kept: dict[str, Any] = {}  # optional fields we cannot use, kept as written
        extra = {k: _json_copy(v) for k, v in data.items() if k not in _CARD_KEYS}
        nickname = self.text(data, "nickname") if data.get("nickname") is not None else None
        if nickname is None and "nickname" in data:
            kept["nickname"] = None
        multilingual = _optional(data, "creator_notes_multilingual", _is_str_map, kept)
        sources = _optional(data, "source", _is_str_list, kept)
        assets = _optional(data, "assets", _is_asset_list, kept)
        return CharacterCard(
            name=name,
            **{key: self.text(data, key) for key in _CARD_TEXTS},  # type: ignore[arg-type]
            **{key: self.texts(data, key) for key in _CARD_LISTS},  # type: ignore[arg-type]
            character_book=self.book(data.get("character_book")),
            extensions=self.json_object(data, "extensions"),
            nickname=nickname,
            creator_notes_multilingual=(
                None if multilingual is None else {k: _clean(v) for k, v in multilingual.items()}
            ),
            source=None if sources is None else tuple(_clean(s) for s in sources),
            creation_date=_optional(data, "creation_date", _is_number, kept),
            modification_date=_optional(data, "modification_date", _is_number, kept),
            assets=None if assets is None else tuple(_asset(a) for a in assets),
            spec=spec,
            spec_version=spec_version,
            extra=extra | kept,
            outer={k: _json_copy(v) for k, v in outer.items()},
        )

    def json_object(
        self, obj: Mapping[str, Any], key: str, where: str | None = None
    ) -> dict[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where or key, f"expected an object, got {type(value).__name__}")
        return dict(_json_copy(value))

    def book(self, book: object) -> Lorebook | None:
        if book is None:
            return None
        if not isinstance(book, dict):
            raise self.fail("character_book", "expected an object")
        entries = book.get("entries")
        if entries is not None and not isinstance(entries, list):
            raise self.fail("character_book.entries", "expected a list")
        kept: dict[str, Any] = {}
        extra = {k: _json_copy(v) for k, v in book.items() if k not in _BOOK_KEYS}
        name = _optional(book, "name", _is_str, kept)
        description = _optional(book, "description", _is_str, kept)
        return Lorebook(
            entries=tuple(self.entry(e, i) for i, e in enumerate(entries or ())),
            name=None if name is None else _clean(name),
            description=None if description is None else _clean(description),
            scan_depth=_optional(book, "scan_depth", _is_int, kept),
            token_budget=_optional(book, "token_budget", _is_int, kept),
            recursive_scanning=_optional(book, "recursive_scanning", _is_bool, kept),
            extensions=self.json_object(book, "extensions", "character_book.extensions"),
            extra=extra | kept,
        )

    def entry(self, entry: object, i: int) -> LoreEntry:
        where = f"character_book.entries[{i}]"
        if not isinstance(entry, dict):
            raise self.fail(where, "expected an object")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.fail(f"{where}.enabled", "expected true or false")
        kept: dict[str, Any] = {}
        extra = {k: _json_copy(v) for k, v in entry.items() if k not in LORE_ENTRY_KEYS}
        order = _optional(entry, "insertion_order", _is_number, kept)
        secondary = _optional(entry, "secondary_keys", _is_str_list, kept)
        texts = {k: _optional(entry, k, _is_str, kept) for k in ("name", "comment", "position")}
        entry_id = _optional(entry, "id", _is_id, kept)
        return LoreEntry(
            keys=self.texts(entry, "keys", f"{where}.keys"),
            content=self.text(entry, "content", f"{where}.content"),
            extensions=self.json_object(entry, "extensions", f"{where}.extensions"),
            enabled=enabled,
            insertion_order=order,
            case_sensitive=_optional(entry, "case_sensitive", _is_bool, kept),
            use_regex=_optional(entry, "use_regex", _is_bool, kept),
            constant=_optional(entry, "constant", _is_bool, kept),
            name=None if texts["name"] is None else _clean(texts["name"]),
            priority=_optional(entry, "priority", _is_number, kept),
            id=_clean(entry_id) if isinstance(entry_id, str) else entry_id,
            comment=None if texts["comment"] is None else _clean(texts["comment"]),
            selective=_optional(entry, "selective", _is_bool, kept),
            secondary_keys=None if secondary is None else tuple(_clean(k) for k in secondary),
            position=texts["position"],
            extra=extra | kept,
        )


def _optional(
    obj: Mapping[str, Any], key: str, ok: Callable[[Any], bool], kept: dict[str, Any]
) -> Any:
    """The value of an optional key when it has a usable type; ``None`` when absent or
    null; otherwise ``None`` too, and the value goes to ``kept`` to be written back."""
    value = obj.get(key)
    if value is None:
        if key in obj:
            kept[key] = None  # an explicit null, written back as one
        return None
    if ok(value):
        return _json_copy(value)
    kept[key] = _json_copy(value)
    return None


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or _is_int(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_asset_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(a, dict)
        and isinstance(a.get("type"), str)
        and isinstance(a.get("uri"), str)
        and isinstance(a.get("name", ""), str | None)
        and isinstance(a.get("ext", ""), str | None)
        for a in value
    )


def _asset(obj: Mapping[str, Any]) -> Asset:
    rest = {k: _json_copy(v) for k, v in obj.items() if k not in ("type", "uri", "name", "ext")}
    name, ext = obj.get("name"), obj.get("ext")
    return Asset(
        type=_clean(obj["type"]),
        uri=_clean(obj["uri"]),
        name=None if name is None else _clean(name),
        ext=None if ext is None else _clean(ext),
        extra=rest,
    )
