"""``TelegramOptions``: how the Telegram adapter paces, retries and listens.

The connection settings (token, mode, API base URL, webhook secret) live in
:class:`bot.config.TelegramSettings`; these are the tuning knobs, with defaults that
keep within Telegram's published limits (about one message per second in a chat,
twenty a minute in a group).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ConfigError

#: Telegram's limit on one message's text, after entity parsing, in UTF-16 code units.
TELEGRAM_MAX_CHARS = 4096


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    """Tuning for :class:`~adapters.telegram.adapter.TelegramAdapter`.

    The two intervals space *every* message write (send or edit) to one chat, so a
    streamed reply and a reply split into several messages both stay inside the
    platform's per-chat limits, and two replies streaming at once in one group share
    the group's budget.
    """

    #: Seconds between two writes (sendMessage, editMessageText) to one private chat.
    private_edit_interval: float = 1.0
    #: Seconds between two writes to one group: Telegram allows about 20 a minute.
    group_edit_interval: float = 3.0
    #: How long a reply may gather text before its first message goes out. A reply that
    #: is complete within it goes out as one message rather than a message plus an edit
    #: one interval later; a slower one shows its first words after this delay.
    first_message_delay: float = 0.3
    #: Telegram shows "typing…" for about 5 s; it is renewed at this interval.
    typing_interval: float = 4.0
    #: Longest message (Telegram's limit). Replies are split below it.
    max_message_chars: int = TELEGRAM_MAX_CHARS
    #: The path of the webhook route on the web server (webhook mode).
    webhook_path: str = "/telegram/webhook"
    #: Updates handled at once; further ones wait their turn, cheaply. Past the CPU's
    #: capacity, more at once only makes each slower: replies then miss
    #: ``first_message_delay`` and cost a typing action, a draft and an edit instead
    #: of one message. A handled update holds its slot while it waits for the backend
    #: and for its chat's pace, so keep this well above the replies streaming at once.
    max_concurrent_updates: int = 256
    #: Messages of one chat member waiting behind the one being answered; more are
    #: dropped (a flood would otherwise hold every concurrent slot).
    max_queued_per_chat: int = 20
    #: Webhook mode: seconds an acknowledged update stays with the worker answering it
    #: before another may take it from the store's inbox (:mod:`bot.inbox`), and how
    #: often each worker looks; longer than a reply may take (lease wait + backend).
    inbox_hold_seconds: float = 240.0
    inbox_sweep_seconds: float = 30.0
    #: getUpdates long-poll timeout, in seconds (polling mode).
    poll_timeout: float = 30.0
    #: Attempts after a network error or timeout, with exponential backoff, for writes
    #: that need not arrive (a progress edit: a fresher one follows).
    network_retries: int = 3
    retry_backoff: float = 0.5
    #: The longest pause between two attempts (the backoff stops growing there).
    retry_backoff_max: float = 30.0
    #: Seconds a write that must arrive (a reply's final text) keeps being tried through
    #: a Bot API outage (5xx, refused connections) before it is given up.
    delivery_patience: float = 600.0
    #: Attempts after a 429 for a message that must arrive (waiting ``retry_after``).
    flood_retries: int = 8
    #: Seconds a request may wait for a free connection of the HTTP pool.
    pool_timeout: float = 10.0
    #: HTTP connections to the Bot API (httpcore scans its whole pool on every request,
    #: so a larger pool costs CPU; Telegram allows about 30 messages/s anyway).
    connection_pool_size: int = 32

    def __post_init__(self) -> None:
        if self.private_edit_interval < 0 or self.group_edit_interval < 0:
            raise ConfigError("TELEGRAM edit intervals must not be negative")
        if not 100 <= self.max_message_chars <= TELEGRAM_MAX_CHARS:
            raise ConfigError(f"TELEGRAM max_message_chars must be 100..{TELEGRAM_MAX_CHARS}")
        if not self.webhook_path.startswith("/"):
            raise ConfigError("TELEGRAM webhook_path must start with '/'")
        if self.max_concurrent_updates < 1 or self.max_queued_per_chat < 1:
            raise ConfigError("TELEGRAM update concurrency limits must be at least 1")

    def edit_interval(self, private: bool) -> float:
        return self.private_edit_interval if private else self.group_edit_interval
