"""A character card that loses nothing: every field of Character Card V1, V2 and V3.

The dataclasses here hold a card exactly as it was written: text is kept verbatim
(macros, spacing), ``extensions`` objects are kept as they came, and keys a later
spec version may add (unknown to us) are kept in ``extra`` so that exporting the card
gives them back. :mod:`bot.cards` reads a card's JSON into a :class:`CharacterCard`
and :mod:`bot.card_export` writes one back as V3 (and V2 for older tools).

Field names are the specs' own (``first_mes``, ``mes_example``, ``character_book``);
the V1 (TavernAI/Pygmalion) aliases are mapped to them on reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Where SillyTavern puts a lorebook entry's text, in the V2/V3 ``position`` field.
Position = Literal["before_char", "after_char"]
#: A JSON object kept as it came (``extensions``, unknown keys).
JsonObject = Mapping[str, Any]


def _empty() -> JsonObject:
    return {}


@dataclass(frozen=True, slots=True)
class LoreEntry:
    """One lorebook entry with every setting of the V2/V3 specs.

    Optional settings are ``None`` when the card does not set them, so that an export
    writes back exactly the keys the card had.
    """

    keys: tuple[str, ...] = ()
    content: str = ""
    extensions: JsonObject = field(default_factory=_empty)
    enabled: bool = True
    insertion_order: float | None = None
    case_sensitive: bool | None = None
    use_regex: bool | None = None
    constant: bool | None = None
    name: str | None = None
    priority: float | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool | None = None
    secondary_keys: tuple[str, ...] | None = None
    position: str | None = None
    extra: JsonObject = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Lorebook:
    """A card's ``character_book``: its entries and the book-wide settings."""

    entries: tuple[LoreEntry, ...] = ()
    name: str | None = None
    description: str | None = None
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None
    extensions: JsonObject = field(default_factory=_empty)
    extra: JsonObject = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Asset:
    """A V3 asset: an icon, background, emotion... by URI (``ccdefault:`` is the card's
    own image when the card is a PNG)."""

    type: str
    uri: str
    name: str | None = None
    ext: str | None = None
    extra: JsonObject = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class DepthPrompt:
    """SillyTavern's "character's note" (``extensions.depth_prompt``): text inserted
    ``depth`` messages from the end of the chat, as ``role``."""

    prompt: str
    depth: int = 4
    role: Literal["system", "user", "assistant"] = "system"


@dataclass(frozen=True, slots=True)
class CharacterCard:
    """Every field of a V1/V2/V3 character card, as written.

    ``spec`` says which version the card was read from (``chara_card_v3``,
    ``chara_card_v2`` or ``""`` for V1); ``extra`` holds unknown keys of ``data`` and
    ``outer`` unknown keys beside it (SillyTavern writes V1 mirror fields and some of
    its own there), both written back on export.
    """

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: tuple[str, ...] = ()
    character_book: Lorebook | None = None
    tags: tuple[str, ...] = ()
    creator: str = ""
    character_version: str = ""
    extensions: JsonObject = field(default_factory=_empty)
    # V3 additions
    nickname: str | None = None
    creator_notes_multilingual: Mapping[str, str] | None = None
    source: tuple[str, ...] | None = None
    group_only_greetings: tuple[str, ...] = ()
    creation_date: float | None = None
    modification_date: float | None = None
    assets: tuple[Asset, ...] | None = None
    # what the card was read from, and what we do not know but keep
    spec: str = ""
    spec_version: str = ""
    extra: JsonObject = field(default_factory=_empty)
    outer: JsonObject = field(default_factory=_empty)

    @property
    def char_name(self) -> str:
        """What ``{{char}}`` stands for: the nickname when there is one (V3), else the name."""
        return (self.nickname or "").strip() or self.name.strip()

    @property
    def depth_prompt(self) -> DepthPrompt | None:
        """The character's note in ``extensions.depth_prompt``, if it has any text."""
        return depth_prompt_of(self.extensions)

    @property
    def personabridge(self) -> JsonObject:
        """PersonaBridge's own options for this card (``extensions.personabridge``)."""
        value = self.extensions.get("personabridge")
        return value if isinstance(value, Mapping) else {}


def depth_prompt_of(extensions: JsonObject) -> DepthPrompt | None:
    """Read SillyTavern's ``depth_prompt`` extension leniently (bad values: defaults)."""
    note = extensions.get("depth_prompt")
    if not isinstance(note, Mapping):
        return None
    prompt = note.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    depth = note.get("depth", 4)
    if isinstance(depth, bool) or not isinstance(depth, int | float) or depth < 0:
        depth = 4
    role = note.get("role", "system")
    if role not in ("system", "user", "assistant"):
        role = "system"
    return DepthPrompt(prompt, int(depth), role)
