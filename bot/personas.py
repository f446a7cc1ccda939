"""Persona cards: the model, TOML cards and SillyTavern Character Card V2/V3 import.

(Skeleton: the loaders are being written; the model below is the contract.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)


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
    """The personas of one directory, by id, in a stable order (file name)."""

    def __init__(self, personas: list[Persona], default_id: str | None = None): ...

    @classmethod
    def from_directory(cls, directory: Path, default_id: str | None = None) -> PersonaLibrary: ...

    def get(self, persona_id: str) -> Persona: ...

    def find(self, persona_id: str) -> Persona | None: ...

    @property
    def default(self) -> Persona: ...

    def __iter__(self): ...

    def __len__(self) -> int: ...


def load_card(path: Path) -> Persona:
    """Load a persona from a ``.toml`` card, a V2/V3 ``.json`` card or a ``.png`` card."""
    raise NotImplementedError
