"""The user's own persona: who a user tells the bot they are.

It is kept as two of the owner's preferences, so it lives where everything else of
the owner lives: it is read with every message at no extra cost (``resolve_identity``
returns the preferences), moves to the account on ``/link`` as preferences do, is in
the export, and goes with ``/forget`` and account deletion. This module is the one
place that knows those preference names and the limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.messages import OwnerId, UserPersona, clean_text
from bot.store.base import PreferenceStore

NAME_PREFERENCE = "user_name"
DESCRIPTION_PREFERENCE = "user_description"
MAX_NAME_CHARS = 50
MAX_DESCRIPTION_CHARS = 1000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


class InvalidUserPersona(ValueError):
    """A name or description the bot will not keep; the message says why, for users."""


def from_preferences(prefs: Mapping[str, str]) -> UserPersona:
    return UserPersona(prefs.get(NAME_PREFERENCE, ""), prefs.get(DESCRIPTION_PREFERENCE, ""))


def clean_name(name: str) -> str:
    """A display name on one line, trimmed; InvalidUserPersona when too long."""
    name = _SPACES.sub(" ", _CONTROL.sub("", clean_text(name))).strip()
    if len(name) > MAX_NAME_CHARS:
        raise InvalidUserPersona(f"That name is too long: at most {MAX_NAME_CHARS} characters.")
    if name.startswith("/"):
        raise InvalidUserPersona("A name can't start with '/'.")
    return name


def clean_description(description: str) -> str:
    """A description with its line breaks kept, trimmed; InvalidUserPersona when too long."""
    text = _CONTROL.sub("", clean_text(description)).replace("\r\n", "\n").strip()
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise InvalidUserPersona(
            f"That description is too long: at most {MAX_DESCRIPTION_CHARS:,} characters."
        )
    return text


async def save(store: PreferenceStore, owner: OwnerId, persona: UserPersona) -> UserPersona:
    """Keep ``persona`` (cleaned; empty fields are removed) and return what was kept."""
    kept = UserPersona(clean_name(persona.name), clean_description(persona.description))
    await store.set_preference(owner, NAME_PREFERENCE, kept.name or None)
    await store.set_preference(owner, DESCRIPTION_PREFERENCE, kept.description or None)
    return kept


def describe(persona: UserPersona, display_name: str) -> str:
    """The user's persona in words, for ``/me`` and the account page."""
    if not persona:
        return (
            f"I know you as {display_name}, and nothing more. Tell me about yourself with "
            "/me TEXT, or set the name I call you with /me name NAME."
        )
    name = persona.name or display_name
    lines = [f"I call you {name}."]
    if persona.description:
        lines.append(f"About you: {persona.description}")
    lines.append("Change it with /me TEXT or /me name NAME; /me clear forgets it.")
    return "\n".join(lines)
