"""Files sent with messages, made into what a persona can use: :class:`MediaProcessor`.

Nothing a platform says about a file is trusted: its kind and media type are sniffed
from the bytes (:func:`sniff`). Images are decoded by Pillow, EXIF-rotated, scaled so
that their longest side fits ``MEDIA__MAX_IMAGE_SIDE`` and re-encoded (so what reaches a
model is a small, clean JPEG or PNG, with no metadata such as GPS); an image with more
pixels than ``MEDIA__MAX_PIXELS`` is refused from its header, before anything is
decoded. Voice notes are transcribed (when a :class:`Transcriber` is set up); text files
are decoded and cut at ``MEDIA__MAX_TEXT_CHARS``.

Every limit is enforced here, once for every platform: bytes per file (checked against
what the platform claims before downloading, and by the download itself), seconds per
download and per transcription, files per message. Decoding runs in a worker thread, so
the event loop never waits for it. A file that cannot be used becomes one sentence for
the user (:class:`~bot.errors.MediaRefused`); the rest of the message goes on.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, ImageOps

from bot.config import MediaSettings
from bot.errors import BackendError, MediaRefused
from bot.messages import Attachment, AttachmentKind, IncomingFile

log = logging.getLogger(__name__)

#: Leading bytes of the formats we take, and what they are.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "PNG"),
    (b"\xff\xd8\xff", "image/jpeg", "JPEG"),
    (b"GIF87a", "image/gif", "GIF"),
    (b"GIF89a", "image/gif", "GIF"),
)
_AUDIO_MAGIC = (
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
    (b"\xff\xf3", "audio/mpeg"),
    (b"\xff\xf2", "audio/mpeg"),
    (b"\x1a\x45\xdf\xa3", "audio/webm"),  # Matroska/WebM: what browsers record
)
#: Formats we recognise only to name them when refusing.
_REFUSED_MAGIC = (
    (b"PK\x03\x04", "an archive (ZIP)"),
    (b"%PDF", "a PDF"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)
#: Pillow formats for the sniffed image types (Pillow then opens only that format).
_PILLOW_FORMAT = {media: fmt for _, media, fmt in _IMAGE_MAGIC} | {"image/webp": "WEBP"}


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: AttachmentKind
    media_type: str


def sniff(data: bytes) -> Sniffed | str:
    """What the bytes are: a :class:`Sniffed` kind and media type we can use, or a
    short description of why not (for the user)."""
    for magic, media, _ in _IMAGE_MAGIC:
        if data.startswith(magic):
            return Sniffed(AttachmentKind.IMAGE, media)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Sniffed(AttachmentKind.IMAGE, "image/webp")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return Sniffed(AttachmentKind.AUDIO, "audio/wav")
    if data[4:8] == b"ftyp" and data[8:11] in (b"M4A", b"mp4", b"iso", b"3gp"):
        return Sniffed(AttachmentKind.AUDIO, "audio/mp4")
    for magic, media in _AUDIO_MAGIC:
        if data.startswith(magic):
            return Sniffed(AttachmentKind.AUDIO, media)
    for magic, what in _REFUSED_MAGIC:
        if data.startswith(magic):
            return f"it is {what}, and I read only images, voice notes and text files"
    if decode_text(data[:4096] if len(data) > 4096 else data, 4096, partial=True) is None:
        return "I can't tell what kind of file it is: I read images, voice notes and text"
    return Sniffed(AttachmentKind.TEXT, "text/plain")


def decode_text(data: bytes, max_chars: int, *, partial: bool = False) -> str | None:
    """The text of a file (UTF-8, or UTF-16 with its byte-order mark), cut at
    ``max_chars``; None when it is not text. ``partial`` allows a cut multi-byte
    character at the end (a prefix of a longer file)."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        # an incremental decoder keeps a character cut at the end of a prefix unread
        text = codecs.getincrementaldecoder(encoding)().decode(data, final=not partial)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for char in text[:4096] if ord(char) < 32 and char not in "\t\n\r\f")
    if "\x00" in text or controls > len(text[:4096]) // 100:
        return None
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[… cut at {max_chars:,} characters]"
    return text


@dataclass(frozen=True, slots=True)
class NormalisedImage:
    data: bytes
    media_type: str
    width: int
    height: int


def normalise_image(
    data: bytes, media_type: str, *, max_pixels: int, max_side: int
) -> NormalisedImage:
    """Decode, EXIF-rotate, scale to ``max_side`` and re-encode an image (blocking: run
    it in a thread). Raises MediaRefused for too many pixels or a damaged file."""
    fmt = _PILLOW_FORMAT[media_type]
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise MediaRefused(
                    f"it is {width:,} x {height:,} pixels; I take at most "
                    f"{max_pixels / 1_000_000:g} megapixels"
                )
            # A JPEG decodes at a reduced scale directly (1/2, 1/4, 1/8 of its size, never
            # below the size it is scaled to): a 12 MP photo costs a fraction.
            scale = min(1.0, max_side / max(width, height, 1))
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            frame = ImageOps.exif_transpose(image)
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
            out = io.BytesIO()
            if alpha:
                frame.convert("RGBA").save(out, "PNG", optimize=False)
                kind = "image/png"
            else:
                frame.convert("RGB").save(out, "JPEG", quality=85)
                kind = "image/jpeg"
            return NormalisedImage(out.getvalue(), kind, frame.width, frame.height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaRefused(
            f"it has too many pixels; I take at most {max_pixels / 1_000_000:g} megapixels"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaRefused("it looks damaged: I could not open it as an image") from exc


class Transcriber(Protocol):
    """Speech to text (see :mod:`bot.backends.transcription`)."""

    async def transcribe(self, filename: str, data: bytes, media_type: str) -> str:
        """The words spoken in ``data``; raises BackendError when the service fails."""


@dataclass(slots=True)
class Processed:
    """What the files of one message came to: the usable ones, and one sentence per
    file that was not used (for the user)."""

    attachments: list[Attachment] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


class MediaProcessor:
    """Downloads and converts the files of messages, within :class:`MediaSettings`."""

    def __init__(self, settings: MediaSettings, transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self.transcriber = transcriber
        # one image decoded per core at most: bounds the memory and the threads' CPU
        self._decoding = asyncio.Semaphore(os.cpu_count() or 1)
        # Pillow warns (rather than refuses) between its limit and twice it: refuse.
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

    async def process(self, files: Sequence[IncomingFile]) -> Processed:
        """Every file of a message, one after the other (so that one message holds at
        most one file's bytes at a time)."""
        result = Processed()
        limit = self.settings.max_files
        for index, file in enumerate(files):
            name = file.filename or "a file"
            if index >= limit:
                result.refusals.append(
                    f"{name} was not used: I take at most {limit} file"
                    f"{'' if limit == 1 else 's'} per message."
                )
                continue
            try:
                result.attachments.append(await self.convert(file))
            except MediaRefused as exc:
                result.refusals.append(f"{name} was not used: {exc}.")
        return result

    async def convert(self, file: IncomingFile) -> Attachment:
        """One file as an :class:`Attachment`; raises MediaRefused saying why not."""
        data = await self._download(file)
        if not data:
            raise MediaRefused("it is empty")
        what = sniff(data)
        if isinstance(what, str):
            raise MediaRefused(what)
        name = file.filename
        if what.kind is AttachmentKind.IMAGE:
            settings = self.settings
            async with self._decoding:
                image = await asyncio.to_thread(
                    normalise_image,
                    data,
                    what.media_type,
                    max_pixels=settings.max_pixels,
                    max_side=settings.max_image_side,
                )
            return Attachment(
                what.kind,
                what.media_type,
                len(data),
                name,
                "",
                image.width,
                image.height,
                image=image.data,
            )
        if what.kind is AttachmentKind.AUDIO:
            transcript = await self._transcribe(file, data, what.media_type)
            return Attachment(what.kind, what.media_type, len(data), name, transcript)
        limit = self.settings.max_text_chars
        # a character is at most 4 bytes: what lies beyond is cut anyway, so never decode it
        head = data[: limit * 4 + 4]
        text = await asyncio.to_thread(decode_text, head, limit, partial=len(head) < len(data))
        if text is None:
            raise MediaRefused("it is not text I can read (UTF-8 or UTF-16)")
        return Attachment(what.kind, what.media_type, len(data), name, text)

    async def _download(self, file: IncomingFile) -> bytes:
        limit = self.settings.max_bytes
        if file.size > limit:
            raise MediaRefused.too_large(file.filename, limit)
        timeout = self.settings.download_timeout
        try:
            data = await asyncio.wait_for(file.fetch(limit), timeout)
        except TimeoutError as exc:
            raise MediaRefused(f"it did not download within {timeout:g} s") from exc
        except MediaRefused:
            raise
        except Exception as exc:  # a platform's download error, whatever its library
            log.warning("could not download a file: %s: %s", type(exc).__name__, exc)
            raise MediaRefused("I could not download it") from exc
        if len(data) > limit:
            raise MediaRefused.too_large(file.filename, limit)
        return data

    async def _transcribe(self, file: IncomingFile, data: bytes, media_type: str) -> str:
        if self.transcriber is None:
            return ""
        timeout = self.settings.transcription_timeout
        try:
            async with asyncio.timeout(timeout):
                text = await self.transcriber.transcribe(file.filename or "voice", data, media_type)
        except TimeoutError as exc:
            raise MediaRefused(f"I could not listen to it within {timeout:g} s") from exc
        except BackendError as exc:
            log.warning("transcription failed: %s", exc)
            raise MediaRefused("I could not listen to it just now (transcription failed)") from exc
        text = text.strip()
        if not text:
            raise MediaRefused("I could not make out any words in it")
        return text
