"""Files for the attachment tests, made on the spot: real images (Pillow), a PNG header
that claims 40,000 x 40,000 pixels, a ZIP named like a PNG, a voice note's first bytes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator, Sequence

from PIL import Image

from bot.errors import BackendUnavailable
from bot.messages import Turn, turn_text
from bot.personas import Persona
from bot.store.base import BackendState


def jpeg(width: int = 64, height: int = 48, *, orientation: int | None = None) -> bytes:
    """A JPEG photo; ``orientation`` is its EXIF orientation tag (6: rotate 90° CW)."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 200, 30), (0, 0, width // 2, height))  # left half green
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def png(width: int = 32, height: int = 32, *, alpha: bool = False) -> bytes:
    image = Image.new(
        "RGBA" if alpha else "RGB", (width, height), (10, 20, 30, 128)[: 4 if alpha else 3]
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("secret.txt", "not an image")
    return out.getvalue()


def truncated_png() -> bytes:
    """A PNG cut off in the middle: the signature is right, the image is not there."""
    return png(200, 200)[:60]


def ogg_voice() -> bytes:
    """The start of an Ogg Opus voice note (enough to be sniffed as one)."""
    return b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead" + b"\x01" * 200


class FakeTranscriber:
    """Our Transcriber interface, in memory: says ``text`` or fails; counts calls."""

    def __init__(self, text: str = "hello there", *, fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.calls: list[tuple[str, int, str]] = []

    async def transcribe(self, filename: str, data: bytes, media_type: str) -> str:
        self.calls.append((filename, len(data), media_type))
        if self.fail:
            raise BackendUnavailable("transcription server down")
        return self.text


class FileEcho:
    """Replies with the message as a text-only backend reads it (files included)."""

    name = "echo"

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
    ) -> AsyncIterator[str]:
        yield f"re:{turn_text(message)}"

    async def aclose(self) -> None:
        pass
