"""What the accounts service refuses, as part of the one error tree.

::

    PersonaBridgeError
    └── AuthError                 an account operation was refused (message is for users)
        ├── InvalidUsername       the name breaks the username rules
        ├── WeakPassword          the password breaks the password rules
        ├── LoginFailed           unknown user or wrong password (one message for both)
        └── LoginThrottled        too many recent failures; carries ``retry_after``

A taken username is :class:`bot.errors.UsernameTaken`, raised by the store itself,
which is what enforces uniqueness.
"""

from __future__ import annotations

from bot.errors import PersonaBridgeError


class AuthError(PersonaBridgeError):
    """An account operation was refused; ``str(error)`` is fit to show the user."""


class InvalidUsername(AuthError):
    """The username breaks the rules (length, alphabet)."""


class WeakPassword(AuthError):
    """The password is too short, too long, or too common."""


class LoginFailed(AuthError):
    """Unknown username or wrong password: deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("Wrong username or password.")


class LoginThrottled(AuthError):
    """Too many failed logins for this account or address; try again later."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many failed attempts. Try again in {_human(self.retry_after)}.")


def _human(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = (seconds + 59) // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
