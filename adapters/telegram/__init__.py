"""Telegram front end (python-telegram-bot): private and group chats, polling or
webhook, streamed replies within Telegram's limits.

``bot.app`` builds it with :func:`build_telegram_adapter` and enters it after the web
adapter (whose server hosts :meth:`TelegramAdapter.web_routes` in webhook mode).
"""

from adapters.telegram.adapter import SECRET_HEADER, TelegramAdapter, build_telegram_adapter
from adapters.telegram.options import TelegramOptions

__all__ = ["SECRET_HEADER", "TelegramAdapter", "TelegramOptions", "build_telegram_adapter"]
