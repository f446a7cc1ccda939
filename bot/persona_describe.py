"""``personas show``: every field of a persona's card, for a person to read.

Texts are shown as written (macros and all), long ones indented under their label;
the lorebook is summarised, one line per entry with its keys and settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from bot.card_model import CharacterCard, Lorebook, LoreEntry
from bot.lore_decorators import parse_decorators
from bot.persona_model import EXTENSION_KEY, Persona
from bot.personas import card_of

_PREVIEW = 70


def describe(persona: Persona) -> str:
    """Every field of ``persona`` as labelled lines."""
    card = card_of(persona)
    rows: list[tuple[str, str]] = [
        ("id", persona.id),
        ("name", persona.name),
        ("nickname ({{char}})", persona.nickname),
        ("backend", " -> ".join([persona.backend, *persona.fallback])),
        (
            "backend options",
            _json(dict(persona.backend_options)) if persona.backend_options else "",
        ),
        ("file", persona.source),
        ("card format", card.spec or ("TOML" if persona.source.endswith(".toml") else "V1")),
        ("creator", card.creator),
        ("character version", card.character_version),
        ("tags", ", ".join(card.tags)),
        ("created", _date(card.creation_date)),
        ("modified", _date(card.modification_date)),
        ("source", "\n".join(card.source or ())),
        ("creator notes", card.creator_notes),
        *(
            (f"creator notes ({lang})", text)
            for lang, text in (card.creator_notes_multilingual or {}).items()
        ),
        ("system prompt", persona.system_prompt),
        ("post-history instructions", persona.post_history_instructions),
        ("greeting", persona.greeting),
        *(
            (f"alternate greeting {i}", text)
            for i, text in enumerate(persona.alternate_greetings, start=1)
        ),
        *(
            (f"group-only greeting {i}", text)
            for i, text in enumerate(persona.group_only_greetings, start=1)
        ),
        ("description", persona.description),
        ("personality", persona.personality),
        ("scenario", persona.scenario),
        ("example dialogue", _examples(persona)),
        ("character's note", _note(persona)),
        ("knowledge", "\n".join(f"- {fact}" for fact in persona.knowledge)),
        ("lorebook", _lorebook(persona.lorebook)),
        ("assets", "\n".join(_asset_lines(card))),
        ("extensions", _extensions(card)),
    ]
    return "\n".join(_row(label, value) for label, value in rows if value)


def _row(label: str, value: str) -> str:
    if "\n" not in value and len(value) <= 80:
        return f"{label}: {value}"
    return f"{label}:\n" + "\n".join(f"    {line}" for line in value.splitlines())


def _date(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "0 (unknown)"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _examples(persona: Persona) -> str:
    blocks = persona.example_dialogue
    if not blocks:
        return ""
    lines = [f"{len(blocks)} example conversation(s)"]
    for block in blocks:
        lines.append("<START>")
        lines += [f"{'{{user}}' if ln.role == 'user' else '{{char}}'}: {ln.text}" for ln in block]
    return "\n".join(lines)


def _note(persona: Persona) -> str:
    note = persona.depth_prompt
    if note is None:
        return ""
    return f"at depth {note.depth}, as {note.role}: {note.prompt}"


def _lorebook(book: Lorebook | None) -> str:
    if book is None:
        return ""
    enabled = sum(entry.enabled for entry in book.entries)
    head = [f"{len(book.entries)} entries ({enabled} enabled)"]
    settings = {
        "name": book.name,
        "scan depth": book.scan_depth,
        "token budget": book.token_budget,
        "recursive scanning": book.recursive_scanning,
    }
    head += [f"{key}: {value}" for key, value in settings.items() if value is not None]
    return "\n".join([*head, *(_entry(i, e) for i, e in enumerate(book.entries, start=1))])


def _entry(number: int, entry: LoreEntry) -> str:
    decorators, text = parse_decorators(entry.content)
    flags = [
        flag
        for flag, on in (
            ("constant", entry.constant),
            ("selective", entry.selective),
            ("regex", entry.use_regex),
            ("case-sensitive", entry.case_sensitive),
            ("disabled", not entry.enabled),
        )
        if on
    ]
    label = entry.name or entry.comment or ""
    parts = [f"#{number}" + (f" {label}" if label else "")]
    parts.append("keys: " + (", ".join(entry.keys) or "(none)"))
    if entry.secondary_keys:
        parts.append("secondary: " + ", ".join(entry.secondary_keys))
    if flags:
        parts.append(" ".join(flags))
    if entry.insertion_order is not None:
        parts.append(f"order {entry.insertion_order:g}")
    if entry.priority is not None:
        parts.append(f"priority {entry.priority:g}")
    if entry.position:
        parts.append(entry.position)
    used = list(_decorators(decorators))
    if used:
        parts.append("decorators: " + ", ".join(used))
    preview = " ".join(text.split())
    preview = preview if len(preview) <= _PREVIEW else preview[: _PREVIEW - 1] + "…"
    return " | ".join(parts) + f"\n    {preview}"


def _decorators(decorators: object) -> Iterable[str]:
    for name in (
        "depth",
        "position",
        "role",
        "scan_depth",
        "is_greeting",
        "activate_only_after",
        "activate_only_every",
        "activate",
        "dont_activate",
        "additional_keys",
        "exclude_keys",
    ):
        value = getattr(decorators, name)
        if value is None or value is False or value == ():
            continue
        shown = ",".join(value) if isinstance(value, tuple) else value
        yield f"@@{name}" if value is True else f"@@{name} {shown}"


def _asset_lines(card: CharacterCard) -> Iterable[str]:
    for asset in card.assets or ():
        uri = asset.uri if len(asset.uri) <= _PREVIEW else asset.uri[: _PREVIEW - 1] + "…"
        yield f"{asset.type} {asset.name or ''} ({asset.ext or '?'}): {uri}"


def _extensions(card: CharacterCard) -> str:
    others = {k: v for k, v in card.extensions.items() if k not in (EXTENSION_KEY, "depth_prompt")}
    return _json(others) if others else ""


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
