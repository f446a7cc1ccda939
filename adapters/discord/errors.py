"""The Discord adapter's one error, under the project's root::

    PersonaBridgeError
    └── DiscordAPIError   Discord refused or failed a request (``status`` says how)

discord.py's ``HTTPException`` and our own REST client's failures both become
:class:`DiscordAPIError` at the edge, so the streaming code handles one type.
"""

from __future__ import annotations

from bot.errors import PersonaBridgeError


class DiscordAPIError(PersonaBridgeError):
    """A Discord API request failed with HTTP ``status`` (0 when no answer came)."""

    def __init__(self, status: int, message: str = ""):
        self.status = status
        super().__init__(f"Discord answered HTTP {status}" + (f": {message}" if message else ""))
