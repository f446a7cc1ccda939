"""Telegram front end (python-telegram-bot): private and group chats, polling or
webhook, streamed replies within Telegram's limits.

``bot.app`` builds it with :func:`build_telegram_adapter`; in webhook mode the web
adapter's server hosts :meth:`TelegramAdapter.web_routes`.

The names below load on first use, so that reading the settings
(:mod:`adapters.telegram.settings`, imported by every command) does not import
python-telegram-bot.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.telegram.adapter import SECRET_HEADER, TelegramAdapter, build_telegram_adapter
    from adapters.telegram.options import TelegramOptions
    from adapters.telegram.settings import TelegramSettings

_HOMES = {
    "SECRET_HEADER": "adapters.telegram.adapter",
    "TelegramAdapter": "adapters.telegram.adapter",
    "build_telegram_adapter": "adapters.telegram.adapter",
    "TelegramOptions": "adapters.telegram.options",
    "TelegramSettings": "adapters.telegram.settings",
}

__all__ = [
    "SECRET_HEADER",
    "TelegramAdapter",
    "TelegramOptions",
    "TelegramSettings",
    "build_telegram_adapter",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
