"""The one error tree of PersonaBridge.

Every error the project raises on purpose derives from :class:`PersonaBridgeError`,
so a front end needs one ``except`` to turn anything expected into a clear message::

    PersonaBridgeError
    ├── ConfigError            a setting is missing or invalid (names the setting)
    ├── PersonaError           a persona card cannot be loaded (names file and field)
    │   └── UnknownPersona     no persona with that id
    ├── StoreError             persistence failed
    │   ├── StoreUnavailable   the store cannot be reached (transient, retryable)
    │   ├── VersionConflict    a conversation changed under us (optimistic concurrency)
    │   ├── ConversationBusy   another worker holds the conversation's lease
    │   ├── OwnerForgotten     the owner was forgotten or deleted since the write began
    │   └── UsernameTaken      an account name is already in use (case-insensitive)
    ├── BackendError           a persona brain failed
    │   ├── BackendTimeout     no (further) reply within the configured time
    │   └── BackendUnavailable the backend refused or is switched off (transient)
    ├── PlatformUnreachable    a platform (Telegram, Discord) cannot be reached at start
    └── MediaRefused           a file sent with a message cannot be used (says why)

Lower-layer exceptions (sqlite3, botocore, HTTP clients) are translated at the edge of
the module that talks to them: ``raise StoreUnavailable(...) from exc``.
"""

from __future__ import annotations


class PersonaBridgeError(Exception):
    """Root of every error PersonaBridge raises on purpose."""


class ConfigError(PersonaBridgeError):
    """A setting is missing or invalid; the message names the setting."""


class PersonaError(PersonaBridgeError):
    """A persona card could not be loaded; the message names the file and the field."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        parts = [p for p in (source, f"field {field!r}" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class UnknownPersona(PersonaError):
    """There is no persona with the requested id."""

    def __init__(self, persona_id: str):
        self.persona_id = persona_id
        super().__init__(f"no persona with id {persona_id!r}")


class StoreError(PersonaBridgeError):
    """Persistence failed."""


class StoreUnavailable(StoreError):
    """The store could not be reached or answered with a transient error."""


class VersionConflict(StoreError):
    """The conversation's version moved on since it was read; reload and try again."""


class ConversationBusy(StoreError):
    """Another worker is answering this conversation (it holds the lease) until ``until``;
    nothing was stored. Wait and try again (see :mod:`bot.leases`)."""

    def __init__(self, message: str, *, until: float = 0.0):
        self.until = until
        super().__init__(message)


class OwnerForgotten(StoreError):
    """The owner's data was forgotten (``/forget``) or its account deleted after this
    write began (its epoch moved on): the write is refused, never retried."""


class UsernameTaken(StoreError):
    """An account with this name (compared case-insensitively) already exists."""


class BackendError(PersonaBridgeError):
    """A persona backend failed to produce a reply."""

    #: Whether trying the same backend again may help.
    transient: bool = False


class BackendTimeout(BackendError):
    """The backend produced no (further) text within the configured time."""

    transient = True


class BackendUnavailable(BackendError):
    """The backend refused the request or is temporarily switched off."""

    transient = True


class PlatformUnreachable(PersonaBridgeError):
    """An adapter could not reach its platform while starting (no route, refused
    connection, timeout, 5xx): transient, so it is tried again in the background. A
    token the platform *refuses* is a :class:`ConfigError` instead."""


class MediaRefused(PersonaBridgeError):
    """A file sent with a message was not used; the message says why, in words for
    users (it names the file and the limit)."""

    @classmethod
    def too_large(cls, filename: str, max_bytes: int) -> MediaRefused:
        return cls(f"{filename or 'a file'} is larger than {_size(max_bytes)}, the most I take")


def _size(count: int) -> str:
    return f"{count / 1_000_000:g} MB" if count >= 1_000_000 else f"{count / 1000:g} kB"
