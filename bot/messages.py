"""The vocabulary every layer shares: what comes in, what is stored, what goes out.

Adapters turn platform events into :class:`Incoming`; the engine resolves who sends one
(a :class:`Speaker`: the owner they speak for, their persona) and answers with a stream
of :data:`ReplyEvent` values (zero or more :class:`TextDelta`, then exactly one
:class:`ReplyDone`); the store keeps :class:`Turn` values per :class:`ConversationKey`.
Nothing platform-specific passes this module.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NewType

from bot.errors import MediaRefused
from bot.persona_model import Persona

#: Who owns a conversation: ``account:<id>`` for a linked account,
#: ``guest:<platform>:<user id>`` for an identity that is not linked.
OwnerId = NewType("OwnerId", str)

Role = Literal["user", "assistant"]

#: The scope of a private chat (and the web): one history across linked platforms.
DIRECT_SCOPE = "direct"


@dataclass(frozen=True, slots=True)
class Identity:
    """A person on one platform: ``(platform, platform user id)``."""

    platform: str
    user_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}"


def account_owner(account_id: str) -> OwnerId:
    return OwnerId(f"account:{account_id}")


def guest_owner(identity: Identity) -> OwnerId:
    return OwnerId(f"guest:{identity.platform}:{identity.user_id}")


def account_of(owner: OwnerId) -> str | None:
    """The account id inside an account owner id, or None for a guest."""
    prefix, _, rest = owner.partition(":")
    return rest if prefix == "account" else None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from any platform, normalised by its adapter.

    ``addressed`` says whether the message is meant for the bot: always true in private
    chats; in groups, true when the bot was mentioned, replied to or commanded.
    ``account_id`` is set only by a front end that authenticated the user itself (the
    web, by its session): the engine then speaks for that account without a lookup.
    ``sent_at`` is set by a front end that stored the event in its inbox first
    (:mod:`bot.inbox`): the time it was stored, kept when it is answered again after a
    crash, so that its turn, when stored already, is not stored twice.
    """

    platform: str
    user_id: str
    display_name: str
    chat_id: str
    private: bool
    text: str
    addressed: bool = True
    account_id: str | None = None
    sent_at: float | None = None
    #: Files sent with the message, not read yet: the engine fetches and converts them.
    files: tuple[IncomingFile, ...] = ()

    def __post_init__(self) -> None:
        # Every platform can deliver a lone surrogate (JSON spells them); no store can
        # keep one, so it is replaced here, once for all of them.
        if not self.text.isascii():
            object.__setattr__(self, "text", clean_text(self.text))
        if not self.display_name.isascii():
            object.__setattr__(self, "display_name", clean_text(self.display_name))

    @property
    def identity(self) -> Identity:
        return Identity(self.platform, self.user_id)

    @property
    def scope(self) -> str:
        """``direct`` for private chats and the web, ``<platform>:<chat id>`` in groups."""
        return DIRECT_SCOPE if self.private else f"{self.platform}:{self.chat_id}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD.

    JSON may spell them (``"\\ud800"``) and Python decodes them, but they cannot be
    encoded as UTF-8: a store would refuse the message, and no page could show it.
    """
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def too_long_refusal(limit: int) -> str:
    """What every front end answers a message longer than ``limit`` characters: the same
    words everywhere, and the promise that nothing of it was kept (it was not)."""
    return (
        f"That message is too long for me: at most {limit:,} characters, please. "
        "Nothing of it was kept."
    )


class AttachmentKind(enum.StrEnum):
    """What the persona can make of a file."""

    IMAGE = "image"
    AUDIO = "audio"
    TEXT = "text"


#: Reads a file's bytes, at most ``max_bytes`` of them (raises
#: :class:`~bot.errors.MediaRefused` when the file is larger).
FetchBytes = Callable[[int], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """A file as a platform announced it; nothing of it is trusted.

    ``declared_type`` and ``size`` are what the sender's client claims (0: unknown);
    ``voice`` says the platform marked it as a voice note. ``fetch`` downloads it.
    """

    filename: str
    fetch: FetchBytes = field(repr=False, compare=False)
    declared_type: str = ""
    size: int = 0
    voice: bool = False

    @classmethod
    def of_bytes(
        cls, filename: str, data: bytes, declared_type: str = "", *, voice: bool = False
    ) -> IncomingFile:
        """A file already in memory (an upload, a local path read off the loop)."""

        async def fetch(max_bytes: int) -> bytes:
            if len(data) > max_bytes:
                raise MediaRefused.too_large(filename, max_bytes)
            return data

        return cls(filename, fetch, declared_type, len(data), voice)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file of a message, as the persona can use it.

    ``media_type`` is sniffed from the bytes. ``text`` is a voice note's transcript or a
    text file's decoded text (empty for images, and for audio nobody transcribed).
    ``image`` is the normalised image (re-encoded, size capped): it exists only while
    the message is answered and is never stored, so a stored image is its metadata.
    """

    kind: AttachmentKind
    media_type: str
    size: int
    filename: str
    text: str = ""
    width: int = 0
    height: int = 0
    image: bytes | None = field(default=None, repr=False, compare=False)

    def stored(self) -> Attachment:
        """What a store keeps: everything but the image's bytes."""
        return Attachment(
            self.kind, self.media_type, self.size, self.filename, self.text, self.width, self.height
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "media_type": self.media_type,
            "size": self.size,
            "filename": self.filename,
            "text": self.text,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            AttachmentKind(data["kind"]),
            str(data.get("media_type", "")),
            int(data.get("size", 0)),
            str(data.get("filename", "")),
            str(data.get("text", "")),
            int(data.get("width", 0)),
            int(data.get("height", 0)),
        )

    def placeholder(self) -> str:
        """A short line for what a text-only reader cannot take in (an image)."""
        name = f" {self.filename}" if self.filename else ""
        if self.kind is AttachmentKind.IMAGE:
            size = f", {self.width}x{self.height}" if self.width else ""
            return f"[an image{name}{size}]"
        if self.kind is AttachmentKind.AUDIO:
            return f"[a voice note{name}, not transcribed]"
        return f"[a file{name}]"


def attachments_json(attachments: Sequence[Attachment]) -> str:
    """The stored form of a turn's attachments ("" when it has none)."""
    if not attachments:
        return ""
    return json.dumps([a.to_json() for a in attachments], ensure_ascii=False)


def attachments_from_json(data: str | None) -> tuple[Attachment, ...]:
    if not data:
        return ()
    return tuple(Attachment.from_json(item) for item in json.loads(data))


def turn_text(turn: Turn | NewTurn, *, images: bool = False) -> str:
    """A turn as plain text, for a reader that takes only text: a voice note's
    transcript as what the user said, a text file as a fenced block, an image as a
    placeholder (left out when ``images`` is true: the reader sees the image itself)."""
    parts = [turn.text] if turn.text else []
    for item in turn.attachments:
        if item.kind is AttachmentKind.AUDIO and item.text:
            parts.append(item.text)
        elif item.kind is AttachmentKind.TEXT and item.text:
            fence = "```"
            while fence in item.text:
                fence += "`"
            parts.append(f"{item.filename or 'file'}:\n{fence}\n{item.text}\n{fence}")
        elif not (images and item.kind is AttachmentKind.IMAGE and item.image):
            parts.append(item.placeholder())
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class UserPersona:
    """Who a user says they are (``/me``, the account page): the name ``{{user}}`` stands
    for and a short description for the prompt's user-persona slot (SillyTavern's
    "persona"). Empty fields mean "not set": the platform display name is used."""

    name: str = ""
    description: str = ""

    def __bool__(self) -> bool:
        return bool(self.name or self.description)


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """A conversation belongs to ``(owner, persona, scope)``."""

    owner: OwnerId
    persona_id: str
    scope: str


@dataclass(frozen=True, slots=True)
class Speaker:
    """Who is speaking and whose conversations they speak for."""

    incoming: Incoming
    owner: OwnerId
    #: The account this speaker speaks for; None for a guest.
    account_id: str | None
    persona: Persona
    #: Who the speaker says they are (``/me``); empty when they said nothing.
    user: UserPersona = field(default_factory=UserPersona)
    #: The persona this speaker chose, when its card is gone (``persona`` is then the
    #: default): replies say so until they choose another.
    missing_persona: str | None = None

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.owner, self.persona.id, self.incoming.scope)

    @property
    def user_name(self) -> str:
        """What ``{{user}}`` means for this speaker: the name they chose, else the
        platform's display name."""
        return self.user.name or self.incoming.display_name


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation.

    ``seq`` increases by one per turn within a conversation. ``author`` is the display
    name the user had when they wrote (used for ``{{user}}``); for the persona's turns it
    is the persona's name. ``reply_to`` is, on a reply, the ``seq`` of the user turn it
    answers (None on user turns, and on replies stored before replies recorded it: see
    :func:`bot.pairing.paired`).
    """

    seq: int
    role: Role
    text: str
    author: str
    created_at: float
    reply_to: int | None = None
    #: What was sent with the message (metadata, transcripts, file text; never bytes).
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A turn to append; the store assigns ``seq``."""

    role: Role
    text: str
    author: str
    created_at: float
    reply_to: int | None = None
    attachments: tuple[Attachment, ...] = ()


class ReplyKind(enum.StrEnum):
    """What a finished reply is, so adapters and metrics can tell them apart."""

    CHAT = "chat"  #: the persona's answer
    COMMAND = "command"  #: the answer to a command
    ERROR = "error"  #: something failed; the text says what, in words for users
    RATE_LIMITED = "rate_limited"  #: the speaker is sending too fast
    DENIED = "denied"  #: access control refused the speaker


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a reply that is still being written."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """A button offered with a reply: pressing it sends ``command`` as if the same
    person had typed it (so the text names the typed form too, for platforms and
    clients without buttons)."""

    label: str
    command: str


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """A command's answer that offers buttons (most answers are plain text)."""

    text: str
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyDone:
    """The end of a reply: its whole text (deltas joined, or a command's answer).

    ``note`` is a line about this moment only (a backup backend answered): streamed as
    the last delta and shown after the text, never stored. A front end that redraws
    the reply from this event shows :attr:`shown`. ``actions`` are buttons a front end
    that has them shows with the reply (see :class:`Action`).
    """

    text: str
    kind: ReplyKind
    persona_name: str | None = None
    note: str = ""
    #: Shown before the text, never stored: what was heard in a voice note, files refused.
    preface: str = ""
    actions: tuple[Action, ...] = ()
    #: For RATE_LIMITED: whole seconds until the speaker may send again.
    retry_after: int | None = None

    @property
    def shown(self) -> str:
        return self.preface + self.text + self.note


ReplyEvent = TextDelta | ReplyDone
