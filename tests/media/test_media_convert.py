"""bot.media: sniffing, image normalising, text decoding and every limit of a file."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

import tests.support.media_samples as samples
from bot.config import MediaSettings
from bot.media import MediaProcessor, Sniffed, sniff
from bot.messages import AttachmentKind, IncomingFile
from tests.support.media_samples import FakeTranscriber


def processor(transcriber: FakeTranscriber | None = None, **limits: object) -> MediaProcessor:
    return MediaProcessor(MediaSettings.model_validate(limits), transcriber)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(samples.png(), Sniffed(AttachmentKind.IMAGE, "image/png"), id="png"),
        pytest.param(samples.jpeg(), Sniffed(AttachmentKind.IMAGE, "image/jpeg"), id="jpeg"),
        pytest.param(samples.ogg_voice(), Sniffed(AttachmentKind.AUDIO, "audio/ogg"), id="ogg"),
        pytest.param(b"# notes\nhello", Sniffed(AttachmentKind.TEXT, "text/plain"), id="text"),
        pytest.param(
            "ünï".encode("utf-16"), Sniffed(AttachmentKind.TEXT, "text/plain"), id="utf16"
        ),
    ],
)
def test_sniff_knows_what_we_take(data: bytes, expected: Sniffed) -> None:
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(samples.zip_file(), "archive", id="zip"),
        pytest.param(b"%PDF-1.7\n...", "PDF", id="pdf"),
        pytest.param(bytes(range(256)) * 4, "can't tell", id="binary"),
    ],
)
def test_sniff_names_what_we_refuse(data: bytes, words: str) -> None:
    what = sniff(data)
    assert isinstance(what, str) and words in what


async def test_an_image_is_rotated_scaled_and_reencoded() -> None:
    photo = samples.jpeg(400, 200, orientation=6)  # stored landscape, shown portrait
    item = await processor(max_image_side=100).convert(IncomingFile.of_bytes("p.jpg", photo))
    assert (item.kind, item.media_type, item.size) == (
        AttachmentKind.IMAGE,
        "image/jpeg",
        len(photo),
    )
    assert (item.width, item.height) == (50, 100)  # rotated, longest side capped
    assert item.image is not None
    with Image.open(io.BytesIO(item.image)) as out:
        assert (out.format, out.size) == ("JPEG", (50, 100))
        assert not out.getexif()  # no metadata (no orientation, no GPS) goes on


async def test_a_transparent_png_stays_png() -> None:
    item = await processor().convert(IncomingFile.of_bytes("a.png", samples.png(alpha=True)))
    assert item.image is not None and item.image.startswith(b"\x89PNG")


async def test_what_the_platform_claims_is_not_trusted() -> None:
    file = IncomingFile.of_bytes("cat.png", samples.jpeg(), declared_type="image/png")
    item = await processor().convert(file)
    assert item.media_type == "image/jpeg"


@pytest.mark.parametrize(
    ("file", "words"),
    [
        pytest.param(
            IncomingFile.of_bytes("cat.png", samples.zip_file(), "image/png"),
            "archive",
            id="png-that-is-zip",
        ),
        pytest.param(
            IncomingFile.of_bytes("big.png", samples.huge_png_header()),
            "megapixels",
            id="40000x40000",
        ),
        pytest.param(
            IncomingFile.of_bytes("bad.png", samples.truncated_png()), "damaged", id="truncated-png"
        ),
        pytest.param(
            IncomingFile.of_bytes("voice.ogg", b"", "audio/ogg", voice=True),
            "empty",
            id="0-byte-voice",
        ),
    ],
)
async def test_bad_files_are_refused_with_a_reason(file: IncomingFile, words: str) -> None:
    result = await processor(FakeTranscriber()).process([file])
    assert result.attachments == []
    (refusal,) = result.refusals
    assert refusal.startswith(f"{file.filename} was not used") and words in refusal


async def test_the_pixel_limit_is_named() -> None:
    file = IncomingFile.of_bytes("wide.png", samples.png(300, 200))
    result = await processor(max_pixels=50_000).process([file])
    assert "300 x 200 pixels" in result.refusals[0] and "0.05 megapixels" in result.refusals[0]


async def test_a_file_larger_than_the_limit_is_not_downloaded() -> None:
    fetched: list[int] = []

    async def fetch(max_bytes: int) -> bytes:
        fetched.append(max_bytes)
        return b"x"

    file = IncomingFile("movie.txt", fetch, "text/plain", size=30_000_000)
    result = await processor().process([file])
    assert fetched == []
    assert "larger than 20 MB" in result.refusals[0]


async def test_a_download_larger_than_it_said_is_refused() -> None:
    file = IncomingFile.of_bytes("a.txt", b"x" * 2000)
    result = await processor(max_bytes=1000).process([file])
    assert "larger than 1 kB" in result.refusals[0]


async def test_a_stalled_download_is_given_up() -> None:
    started = asyncio.Event()

    async def stall(max_bytes: int) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return b""

    result = await processor(download_timeout=0.05).process([IncomingFile("slow.jpg", stall)])
    assert started.is_set()
    assert "did not download within 0.05 s" in result.refusals[0]


async def test_a_download_error_is_one_sentence() -> None:
    async def broken(max_bytes: int) -> bytes:
        raise ConnectionResetError("peer reset")

    result = await processor().process([IncomingFile("x.jpg", broken)])
    assert result.refusals == ["x.jpg was not used: I could not download it."]


async def test_files_beyond_the_limit_are_refused_the_others_used() -> None:
    files = [IncomingFile.of_bytes(f"{n}.txt", b"note %d" % n) for n in range(3)]
    result = await processor(max_files=2).process(files)
    assert [a.text for a in result.attachments] == ["note 0", "note 1"]
    assert result.refusals == ["2.txt was not used: I take at most 2 files per message."]


async def test_a_text_file_is_decoded_and_cut() -> None:
    file = IncomingFile.of_bytes("long.md", ("ä" * 300).encode())
    (item,) = (await processor(max_text_chars=100).process([file])).attachments
    assert item.kind is AttachmentKind.TEXT
    assert item.text.startswith("ä" * 100) and "cut at 100 characters" in item.text


async def test_a_voice_note_is_transcribed() -> None:
    speech = FakeTranscriber("see you at nine")
    (item,) = (
        await processor(speech).process([IncomingFile.of_bytes("v.ogg", samples.ogg_voice())])
    ).attachments
    assert (item.kind, item.media_type, item.text) == (
        AttachmentKind.AUDIO,
        "audio/ogg",
        "see you at nine",
    )
    assert speech.calls == [("v.ogg", len(samples.ogg_voice()), "audio/ogg")]


async def test_transcription_down_is_a_refusal() -> None:
    result = await processor(FakeTranscriber(fail=True)).process(
        [IncomingFile.of_bytes("v.ogg", samples.ogg_voice())]
    )
    assert result.refusals == [
        "v.ogg was not used: I could not listen to it just now (transcription failed)."
    ]


async def test_without_a_transcriber_a_voice_note_is_kept_untranscribed() -> None:
    (item,) = (
        await processor().process([IncomingFile.of_bytes("v.ogg", samples.ogg_voice())])
    ).attachments
    assert (item.kind, item.text) == (AttachmentKind.AUDIO, "")


async def test_a_large_text_file_is_read_only_as_far_as_it_is_used() -> None:
    data = "ü".encode() * 600_000  # 1.2 MB; the limit takes 100 characters of it
    (item,) = (
        await processor(max_text_chars=100).process([IncomingFile.of_bytes("big.txt", data)])
    ).attachments
    assert item.text == "ü" * 100 + "\n[… cut at 100 characters]"


@pytest.mark.parametrize(
    "encoding", [pytest.param("utf-8", id="utf-8"), pytest.param("utf-16", id="utf-16")]
)
async def test_a_cut_inside_a_character_is_not_an_error(encoding: str) -> None:
    data = ("a" + "€𝄞" * 5000).encode(encoding)  # 3- and 4-byte (or surrogate-pair) characters
    (item,) = (
        await processor(max_text_chars=101).process([IncomingFile.of_bytes("t.txt", data)])
    ).attachments
    assert item.text.startswith("a€𝄞") and item.text.endswith("[… cut at 101 characters]")
