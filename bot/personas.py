"""Persona cards: the persona library, and loading a card from any file kind.

A persona is read from a TOML card (the native format: :mod:`bot.persona_toml`) or a
SillyTavern character card (``.json``, or ``.png`` carrying it; :mod:`bot.cards`),
kept as it came: an imported card is stored in the personas directory in its original
form, and PersonaBridge's own options for it (its id, backend, fallback, backend
options) go in a sidecar ``<stem>.personabridge.toml`` beside it, over whatever the
card's ``extensions.personabridge`` says. Cards load at startup, off the event loop.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from bot import cards
from bot.card_model import CharacterCard
from bot.dialogue import blocks_text
from bot.errors import PersonaError, UnknownPersona
from bot.persona_model import (
    EXTENSION_KEY,
    Exchange,
    Persona,
    PersonaOptions,
    build_persona,
    options_from,
)
from bot.persona_toml import check_id, export_toml, parse_toml

__all__ = [
    "CARD_SUFFIXES",
    "SIDECAR_SUFFIX",
    "Exchange",
    "Persona",
    "PersonaLibrary",
    "card_of",
    "export_toml",
    "load_card",
    "parse_toml",
    "persona_from_card",
    "read_sidecar",
    "sidecar_path",
]

#: The persona the project ships as its default: it stays the default whatever cards are
#: imported next to it, unless ``DEFAULT_PERSONA`` names another.
PROJECT_DEFAULT_PERSONA = "ada"
#: The file kinds :func:`load_card` reads, by suffix.
CARD_SUFFIXES = (".toml", ".json", ".png")
#: The suffix of the options file beside an imported card (not a card itself).
SIDECAR_SUFFIX = ".personabridge.toml"
_SIDECAR_KEYS = frozenset(("id", "backend", "fallback", "backend_options", "voice"))


class PersonaLibrary:
    """The personas of one directory, by id, in a stable order (file name).

    The default is ``default_id`` when given, else the project's own default persona
    (:data:`PROJECT_DEFAULT_PERSONA`), and only when that card is gone the first by file
    name: importing a card never changes who new users meet. :meth:`replace_with` swaps
    in a reloaded set, so whoever holds the library sees the new cards.
    """

    def __init__(self, personas: Iterable[Persona], default_id: str | None = None) -> None:
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
    def from_directory(
        cls, directory: Path, default_id: str | None = None, *, default_backend: str = "offline"
    ) -> PersonaLibrary:
        """Load every card of ``directory`` in file-name order. Cards that name no backend
        get ``default_backend``."""
        files = card_files(directory)
        return cls([load_card(path, default_backend=default_backend) for path in files], default_id)

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
    """The card files of ``directory`` in file-name order (hidden files and the options
    files beside imported cards left out); PersonaError when it cannot be listed or
    holds none."""
    try:
        files = sorted(
            (
                path
                for path in Path(directory).iterdir()
                if path.suffix.lower() in CARD_SUFFIXES
                and not path.name.startswith(".")
                and not path.name.lower().endswith(SIDECAR_SUFFIX)
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


def load_card(
    path: Path, *, persona_id: str | None = None, default_backend: str = "offline"
) -> Persona:
    """Load a persona from a ``.toml`` card, a V1/V2/V3 ``.json`` card or a ``.png`` card.

    ``persona_id`` overrides the id; an imported card's id is otherwise the sidecar's
    ``id``, else its name as a slug, else the file name. ``default_backend`` serves a
    card that names no backend.
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
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PersonaError(f"card is not UTF-8: {exc}", source=source) from exc
        sidecar_id, sidecar = read_sidecar(sidecar_path(path))
        persona = parse_toml(text, source, default_backend=default_backend, sidecar=sidecar)
        persona_id = persona_id if persona_id is not None else sidecar_id
        return persona if persona_id is None else replace(persona, id=check_id(persona_id, source))
    obj = (
        cards.card_from_png(raw, source) if suffix == ".png" else cards.card_from_json(raw, source)
    )
    sidecar_id, sidecar = read_sidecar(sidecar_path(path))
    return persona_from_card(
        obj,
        source=source,
        persona_id=persona_id if persona_id is not None else sidecar_id,
        default_backend=default_backend,
        sidecar=sidecar,
    )


def persona_from_card(
    obj: object,
    *,
    source: str = "",
    persona_id: str | None = None,
    default_backend: str = "offline",
    sidecar: PersonaOptions | None = None,
) -> Persona:
    """A persona from a parsed SillyTavern V1/V2/V3 card (``sidecar``: options that
    win over the card's ``extensions.personabridge``)."""
    card = cards.read_card(obj, source)
    fallback_id = cards.slugify(Path(source).stem) if source else ""
    ours = card.extensions.get(EXTENSION_KEY)
    prefix = f"{'data.' if card.spec else ''}extensions.{EXTENSION_KEY}."
    options = options_from(ours, source, prefix) if isinstance(ours, dict) else PersonaOptions()
    if sidecar is not None:
        options = sidecar.over(options)
        card = _with_options(card, options)
    return build_persona(
        card,
        persona_id=check_id(
            persona_id
            if persona_id is not None
            else cards.slugify(card.name) or fallback_id or "persona",
            source or None,
        ),
        source=source,
        options=options,
        default_backend=default_backend,
    )


def card_of(persona: Persona) -> CharacterCard:
    """The whole card of ``persona`` (with its PersonaBridge options in
    ``extensions.personabridge``); one made from its fields when it was built in code."""
    if persona.card is not None:
        return persona.card
    options = PersonaOptions(
        backend=persona.backend,
        fallback=persona.fallback or None,
        backend_options=dict(persona.backend_options) or None,
        knowledge=persona.knowledge or None,
        voice=persona.voice or None,
    )
    card = CharacterCard(
        name=persona.name,
        nickname=persona.nickname or None,
        description=persona.description,
        personality=persona.personality,
        scenario=persona.scenario,
        first_mes=persona.greeting,
        mes_example=blocks_text(persona.example_dialogue),
        system_prompt=persona.system_prompt,
        post_history_instructions=persona.post_history_instructions,
        alternate_greetings=persona.alternate_greetings,
        group_only_greetings=persona.group_only_greetings,
        character_book=persona.lorebook,
        creator_notes=persona.creator_notes,
        creator=persona.creator,
        tags=persona.tags,
    )
    return _with_options(card, options)


def _with_options(card: CharacterCard, options: PersonaOptions) -> CharacterCard:
    merged = {**card.personabridge, **options.as_json()}
    if not merged and EXTENSION_KEY not in card.extensions:
        return card
    return replace(card, extensions={**card.extensions, EXTENSION_KEY: merged})


def sidecar_path(card_path: Path) -> Path:
    """Where the options of the imported card at ``card_path`` are kept."""
    return card_path.with_name(card_path.stem + SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> tuple[str | None, PersonaOptions | None]:
    """The id and options in a sidecar file; ``(None, None)`` when there is none."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"cannot read the card's options: {exc}", source=source) from exc
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise PersonaError(f"bad TOML: {exc}", source=source) from exc
    for key in data:
        if key not in _SIDECAR_KEYS:
            raise PersonaError(f"unknown key {key!r}", source=source, field=key)
    persona_id = data.get("id")
    if persona_id is not None:
        check_id(persona_id if isinstance(persona_id, str) else "", source)
    return persona_id, options_from(data, source)
