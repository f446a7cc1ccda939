"""The application's settings: the core's (:class:`bot.config.CoreSettings`) and each
platform adapter's own section, composed. Wiring, like :mod:`bot.app`: the one module
of ``bot`` that imports the adapters' settings (import-linter allows exactly these
imports), because the core knows no adapter.

A platform adds its section by declaring a pydantic model beside its code (as
``adapters/telegram/settings.py`` does) and one field here; its names then reach the
environment, ``.env`` and the TOML file, the unknown-name check and its did-you-mean,
and the README's promise, with nothing copied.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.discord.settings import DiscordSettings
from adapters.telegram.settings import TelegramSettings
from bot.config import CoreSettings, load_as


class Settings(CoreSettings):
    """Everything PersonaBridge can be told. Names are a contract: see the README."""

    telegram: TelegramSettings = TelegramSettings()
    discord: DiscordSettings = DiscordSettings()


def load_settings(environ: Mapping[str, str] | None = None, *, use_dotenv: bool = True) -> Settings:
    """Load the settings from ``environ`` (default: the process environment), ``.env``
    and the TOML file named by ``PERSONABRIDGE_CONFIG``. Raises ConfigError on bad
    values and on names that are no setting."""
    return load_as(Settings, environ, use_dotenv=use_dotenv)
