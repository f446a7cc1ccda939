"""``TelegramSettings``: the ``TELEGRAM__*`` section of the settings, declared here,
beside the code that reads it; :mod:`bot.app_settings` composes it into the application's
settings. (Tuning that is no setting, such as the poll timeout, is in
:class:`~adapters.telegram.options.TelegramOptions`.)

The intervals space *every* message write (send or edit) to one chat, so a streamed
reply and a reply split into several messages both stay inside Telegram's published
limits (about one message per second in a chat, twenty a minute in a group), and two
replies streaming at once in one group share the group's budget.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from bot.config import SECTION_CONFIG, HttpUrl, PositiveFloat


class TelegramSettings(BaseModel):
    """How to reach the Bot API and how fast to write to it. The adapter is on when
    ``token`` is set."""

    model_config = SECTION_CONFIG

    token: SecretStr | None = None
    mode: Literal["polling", "webhook"] = "polling"
    #: A self-hosted Bot API server (or, in tests, a fake one on loopback).
    api_base_url: HttpUrl = "https://api.telegram.org"
    #: Checked on every webhook request; generated at start when unset.
    webhook_secret: SecretStr | None = None
    #: The bot's @username without the @, for the web's deep links (t.me/<bot>?start=...).
    bot_username: str | None = None
    #: Least seconds between two writes (sendMessage, editMessageText) to one private
    #: chat, and to one group (Telegram allows about 20 a minute there).
    private_edit_interval: float = Field(default=1.0, ge=0)
    group_edit_interval: float = Field(default=3.0, ge=0)
    #: How long a reply may gather text before its first message goes out. A reply that
    #: is complete within it goes out as one message rather than a message plus an edit
    #: one interval later; a slower one shows its first words after this delay.
    first_message_delay: float = Field(default=0.3, ge=0)
    #: The path of the webhook route on the web server (webhook mode).
    webhook_path: str = "/telegram/webhook"
    #: Updates handled at once; further ones wait their turn, cheaply. Past the CPU's
    #: capacity, more at once only makes each slower: replies then miss
    #: ``first_message_delay`` and cost a typing action, a draft and an edit instead
    #: of one message. A handled update holds its slot while it waits for the backend
    #: and for its chat's pace, so keep this well above the replies streaming at once.
    max_concurrent_updates: int = Field(default=256, ge=1)
    #: Webhook mode: an acknowledged update is held by its worker this long (seconds);
    #: past it, unanswered (the worker died), another worker answers it (bot.inbox).
    #: Longer than a reply may take (lease wait + backend).
    inbox_hold_seconds: PositiveFloat = 240.0
    #: How often each worker looks for such updates (and once at start).
    inbox_sweep_seconds: PositiveFloat = 30.0
    #: Seconds a reply's final text keeps being retried (backing off up to 30 s) through
    #: a Bot API outage (5xx, refused connections) before it is given up; the reply is
    #: stored either way.
    delivery_patience: float = Field(default=600.0, ge=0)

    @field_validator("webhook_path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    def edit_interval(self, private: bool) -> float:
        return self.private_edit_interval if private else self.group_edit_interval
