"""``TelegramOptions``: tuning of the Telegram adapter that is no setting.

What a deployment chooses is in :class:`~adapters.telegram.settings.TelegramSettings`
(``TELEGRAM__*``). These knobs follow from the Bot API itself (its limits, how long
Telegram shows "typing…") or from this code's retry policy; the defaults are what
production runs, and tests and benchmarks shorten them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ConfigError

#: Telegram's limit on one message's text, after entity parsing, in UTF-16 code units.
TELEGRAM_MAX_CHARS = 4096


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    """Tuning for :class:`~adapters.telegram.adapter.TelegramAdapter`."""

    #: Telegram shows "typing…" for about 5 s; it is renewed at this interval.
    typing_interval: float = 4.0
    #: Longest message (Telegram's limit). Replies are split below it.
    max_message_chars: int = TELEGRAM_MAX_CHARS
    #: Messages of one chat member waiting behind the one being answered; more are
    #: dropped (a flood would otherwise hold every concurrent slot).
    max_queued_per_chat: int = 20
    #: getUpdates long-poll timeout, in seconds (polling mode).
    poll_timeout: float = 30.0
    #: Attempts after a network error or timeout, with exponential backoff, for writes
    #: that need not arrive (a progress edit: a fresher one follows).
    network_retries: int = 3
    retry_backoff: float = 0.5
    #: The longest pause between two attempts (the backoff stops growing there).
    retry_backoff_max: float = 30.0
    #: Attempts after a 429 for a message that must arrive (waiting ``retry_after``).
    flood_retries: int = 8
    #: Seconds a request may wait for a free connection of the HTTP pool.
    pool_timeout: float = 10.0
    #: HTTP connections to the Bot API (httpcore scans its whole pool on every request,
    #: so a larger pool costs CPU; Telegram allows about 30 messages/s anyway).
    connection_pool_size: int = 32

    def __post_init__(self) -> None:
        if not 100 <= self.max_message_chars <= TELEGRAM_MAX_CHARS:
            raise ConfigError(f"TELEGRAM max_message_chars must be 100..{TELEGRAM_MAX_CHARS}")
        if self.max_queued_per_chat < 1:
            raise ConfigError("TELEGRAM max_queued_per_chat must be at least 1")
