"""The :class:`Persona`: what the engine and the backends see of a card.

A persona is built from a :class:`~bot.card_model.CharacterCard` (kept whole in
``card``, for ``personas show`` and export) plus PersonaBridge's own options: which
backend answers, its fallbacks and options. Those come, most specific first, from a
sidecar file next to an imported card, from the card's ``extensions.personabridge``
(so other tools still read the card), and from the ``DEFAULT_BACKEND`` setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any

from bot.card_model import CharacterCard, DepthPrompt, Lorebook
from bot.dialogue import ExampleBlock, ExampleLine, exchanges, parse_example_blocks
from bot.errors import PersonaError

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER|CHAR)>", re.IGNORECASE)
#: The key of PersonaBridge's own options in a card's ``extensions``.
EXTENSION_KEY = "personabridge"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One example exchange: what a user says and how the persona answers."""

    user: str
    char: str


@dataclass(frozen=True, slots=True)
class Persona:
    """A persona card, whatever file it came from. Text fields keep their macros
    (``{{char}}``, ``{{user}}``...); :meth:`expand` fills in the two names, and
    :mod:`bot.macros` the whole set.

    ``name`` is the display name; ``{{char}}`` stands for :attr:`char_name` (the V3
    nickname when there is one). ``examples`` are every (user, character) pair of the
    example dialogue; ``example_blocks`` the example conversations of ``mes_example``
    as written (see :attr:`example_dialogue` for all of them). ``card`` is the whole
    card, every field of it, as read.
    """

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
    #: The voice replies are read aloud in (``/voice on``); empty: ``SPEECH__VOICE``.
    voice: str = ""
    creator: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""
    nickname: str = ""
    mes_example: str = ""
    lorebook: Lorebook | None = None
    group_only_greetings: tuple[str, ...] = ()
    creator_notes: str = ""
    example_blocks: tuple[ExampleBlock, ...] = field(default=(), compare=False)
    depth_prompt: DepthPrompt | None = field(default=None, compare=False)
    card: CharacterCard | None = field(default=None, compare=False, repr=False)

    @property
    def char_name(self) -> str:
        """What ``{{char}}`` stands for: the nickname when set, else the name."""
        return self.nickname.strip() or self.name

    @property
    def example_dialogue(self) -> tuple[ExampleBlock, ...]:
        """Every example conversation: one per pair not from ``mes_example`` (TOML
        ``[[example]]`` tables, or pairs given directly), then ``mes_example``'s blocks."""
        own = len(self.examples) - len(exchanges(self.example_blocks))
        pairs = tuple(
            (ExampleLine("user", ex.user), ExampleLine("char", ex.char))
            for ex in self.examples[: max(own, 0)]
            if ex.user.strip() or ex.char.strip()
        )
        return pairs + self.example_blocks

    @property
    def greetings(self) -> tuple[str, ...]:
        """The greeting and the alternate greetings, in the card's order (V3
        ``@@is_greeting`` numbers them so: 0 is the first message)."""
        return (self.greeting, *self.alternate_greetings)

    def expand(self, text: str, user: str) -> str:
        """Replace ``{{char}}``/``<BOT>``/``<char>`` with :attr:`char_name` and
        ``{{user}}``/``<USER>`` with the user's display name (case-insensitive)."""

        def substitute(match: re.Match[str]) -> str:
            which = (match.group(1) or match.group(2)).lower()
            return user if which == "user" else self.char_name

        return _MACRO.sub(substitute, text)


@dataclass(frozen=True, slots=True)
class PersonaOptions:
    """PersonaBridge's options for one card; ``None``: not set here."""

    backend: str | None = None
    fallback: tuple[str, ...] | None = None
    backend_options: Mapping[str, Any] | None = None
    knowledge: tuple[str, ...] | None = None
    voice: str | None = None

    def over(self, base: PersonaOptions) -> PersonaOptions:
        """These options, with ``base``'s where these set none."""
        return PersonaOptions(
            backend=self.backend if self.backend is not None else base.backend,
            fallback=self.fallback if self.fallback is not None else base.fallback,
            backend_options=(
                self.backend_options if self.backend_options is not None else base.backend_options
            ),
            knowledge=self.knowledge if self.knowledge is not None else base.knowledge,
            voice=self.voice if self.voice is not None else base.voice,
        )

    def as_json(self) -> dict[str, Any]:
        """The options as JSON for ``extensions.personabridge`` (TOML dates as text)."""
        out: dict[str, Any] = {}
        if self.backend is not None:
            out["backend"] = self.backend
        if self.fallback is not None:
            out["fallback"] = list(self.fallback)
        if self.backend_options is not None:
            out["backend_options"] = _jsonable(dict(self.backend_options))
        if self.knowledge is not None:
            out["knowledge"] = list(self.knowledge)
        if self.voice is not None:
            out["voice"] = self.voice
        return out


def options_from(obj: Mapping[str, Any], source: str, prefix: str = "") -> PersonaOptions:
    """Read options from a table (a sidecar, or ``extensions.personabridge``)."""

    def fail(key: str, what: str) -> PersonaError:
        return PersonaError(f"expected {what}", source=source, field=prefix + key)

    backend = obj.get("backend")
    if backend is not None and (not isinstance(backend, str) or not backend.strip()):
        raise fail("backend", "a backend name")
    lists: dict[str, tuple[str, ...] | None] = {}
    for key in ("fallback", "knowledge"):
        value = obj.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise fail(key, "a list of strings")
        lists[key] = None if value is None else tuple(value)
    options = obj.get("backend_options")
    if options is not None and not isinstance(options, Mapping):
        raise fail("backend_options", "a table")
    voice = obj.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise fail("voice", "a voice name")
    return PersonaOptions(
        backend=backend,
        fallback=lists["fallback"],
        backend_options=None if options is None else dict(options),
        knowledge=lists["knowledge"],
        voice=voice.strip() if voice is not None else None,
    )


def build_persona(
    card: CharacterCard,
    *,
    persona_id: str,
    source: str,
    options: PersonaOptions,
    default_backend: str = "offline",
    strip: bool = True,
    pairs: tuple[Exchange, ...] = (),
    mes_example: str | None = None,
) -> Persona:
    """The persona of ``card``. ``pairs`` are example exchanges given besides
    ``mes_example`` (TOML ``[[example]]``); ``mes_example`` overrides the card's (TOML
    keeps the two apart); ``strip`` trims the texts (imported cards, not TOML)."""

    def text(value: str) -> str:
        return value.strip() if strip else value

    raw_examples = card.mes_example if mes_example is None else mes_example
    blocks = parse_example_blocks(raw_examples, (card.name, card.nickname or ""))
    greetings = (text(g) for g in card.alternate_greetings)
    return Persona(
        id=persona_id,
        name=text(card.name),
        nickname=text(card.nickname or ""),
        greeting=text(card.first_mes),
        description=text(card.description),
        personality=text(card.personality),
        scenario=text(card.scenario),
        system_prompt=text(card.system_prompt),
        post_history_instructions=text(card.post_history_instructions),
        examples=pairs + tuple(Exchange(u, c) for u, c in exchanges(blocks)),
        mes_example=raw_examples,
        example_blocks=blocks,
        knowledge=options.knowledge or (),
        alternate_greetings=tuple(g for g in greetings if g or not strip),
        group_only_greetings=card.group_only_greetings,
        lorebook=card.character_book,
        creator_notes=card.creator_notes,
        depth_prompt=card.depth_prompt,
        backend=options.backend or default_backend,
        backend_options=MappingProxyType(dict(options.backend_options or {})),
        fallback=options.fallback or (),
        voice=options.voice or "",
        creator=card.creator,
        tags=card.tags,
        source=source,
        card=card,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
