"""Loading ``PERSONAS_DIR`` as the settings say, shared by the app and the CLI."""

from __future__ import annotations

from bot.config import CoreSettings
from bot.errors import ConfigError, UnknownPersona
from bot.personas import PersonaLibrary


def load_personas(settings: CoreSettings) -> PersonaLibrary:
    """The persona cards of ``PERSONAS_DIR``; a ``DEFAULT_PERSONA`` that names none of
    them is a setting error, named as such."""
    directory, backend = settings.personas_dir, settings.default_backend
    try:
        return PersonaLibrary.from_directory(
            directory, settings.default_persona, default_backend=backend
        )
    except UnknownPersona as exc:
        library = PersonaLibrary.from_directory(directory, default_backend=backend)
        raise ConfigError(
            f"PERSONABRIDGE_DEFAULT_PERSONA: no persona {exc.persona_id!r} in "
            f"{directory} (known: {', '.join(p.id for p in library)})"
        ) from exc
