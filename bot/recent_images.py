"""The images of each conversation's latest message, kept in memory for ``/retry``.

Images are never stored (a turn keeps their metadata): without this, a ``/retry`` of a
message with a photo would be answered by a model that sees only the photo's
placeholder line. :class:`RecentImages` keeps the normalised images of the latest user
message of each conversation, for at most ``keep_seconds`` and ``max_bytes`` in all
(least recently sent dropped first), in this process only. A ``/retry`` that finds them
shows them to the model again; one that does not (a restart, another worker, too long
ago) is answered without them, and the reply says so (:data:`IMAGES_GONE_NOTE`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.messages import Attachment, AttachmentKind, ConversationKey, Turn
from bot.personas import Persona

#: Shown after a /retry reply whose message had images this process no longer holds.
IMAGES_GONE_NOTE = (
    "\n\n(I no longer have the picture you sent with that message — pictures are kept "
    "only for a while, never stored — so this reply could not look at it. Send it again "
    "to show me.)"
)


@runtime_checkable
class SeesImages(Protocol):
    """A backend that may show a persona's model the images of a message."""

    def sees_images(self, persona: Persona) -> bool: ...


class _HasBackends(Protocol):
    @property
    def backends(self) -> Mapping[str, object]: ...


def sees_images(guard: _HasBackends, persona: Persona) -> bool:
    """Whether ``persona``'s backend shows its model images (else an image is only ever
    its placeholder line, and a /retry loses nothing without it)."""
    backend = guard.backends.get(persona.backend)
    return isinstance(backend, SeesImages) and backend.sees_images(persona)


@dataclass(frozen=True, slots=True)
class _Kept:
    seq: int
    attachments: tuple[Attachment, ...]
    size: int
    at: float


def _same_file(kept: Attachment, stored: Attachment) -> bool:
    return (kept.kind, kept.media_type, kept.size, kept.filename) == (
        stored.kind,
        stored.media_type,
        stored.size,
        stored.filename,
    )


class RecentImages:
    """Per conversation, the images of its latest user message (see the module doc)."""

    def __init__(
        self,
        *,
        max_bytes: int = 64_000_000,
        keep_seconds: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.keep_seconds = keep_seconds
        self._clock = clock
        self._kept: OrderedDict[ConversationKey, _Kept] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def bytes(self) -> int:
        return self._bytes

    def keep(self, key: ConversationKey, message: Turn) -> None:
        """Remember ``message``'s images (it is now the conversation's latest)."""
        self._drop(key)
        self._expire()
        size = sum(len(a.image) for a in message.attachments if a.image)
        if not size or size > self.max_bytes:
            return
        self._kept[key] = _Kept(message.seq, message.attachments, size, self._clock())
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._kept)))

    def restore(self, key: ConversationKey, message: Turn) -> tuple[Turn, bool]:
        """``message`` (a stored turn, being answered again) with its images when they
        are still here, and whether it had images that are gone."""
        wanted = [a for a in message.attachments if a.kind is AttachmentKind.IMAGE]
        if not wanted:
            return message, False
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept.at > self.keep_seconds:
            self._drop(key)
            kept = None
        if (
            kept is None
            or kept.seq != message.seq
            or len(kept.attachments) != len(message.attachments)
            or not all(map(_same_file, kept.attachments, message.attachments))
        ):
            return message, True
        return dataclasses.replace(message, attachments=kept.attachments), False

    def _expire(self) -> None:
        """Forget what was kept too long (the oldest come first)."""
        now = self._clock()
        while self._kept:
            key, kept = next(iter(self._kept.items()))
            if now - kept.at <= self.keep_seconds:
                return
            self._drop(key)

    def _drop(self, key: ConversationKey) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._bytes -= kept.size
