"""Photos, documents and voice notes from Telegram, downloaded through PTB's file API
(getFile, then the file URL) from the fake Bot API."""

from __future__ import annotations

from typing import Any

import tests.support.media_samples as samples
from bot.config import MediaSettings
from bot.engine import Engine
from bot.media import MediaProcessor
from bot.store.memory import MemoryStore
from tests.support.media_samples import FakeTranscriber, FileEcho
from tests.support.telegram_harness import ALICE, GROUP_ID, Chat, bot_message, build_engine, polling
from tests.support.telegram_server import FakeBotApi


def engine(store: MemoryStore, **limits: Any) -> Engine:
    made = build_engine(store, FileEcho())  # type: ignore[arg-type]
    made.media = MediaProcessor(MediaSettings.model_validate(limits), FakeTranscriber("hi there"))
    return made


def photo_sizes(*sizes: tuple[str, int]) -> dict[str, Any]:
    return {
        "photo": [
            {"file_id": fid, "file_unique_id": f"u{fid}", "width": 90, "height": 90, "file_size": n}
            for fid, n in sizes
        ]
    }


async def test_a_photo_with_a_caption_uses_the_largest_size_that_fits(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    fake.files.update(small=samples.jpeg(32, 24), large=samples.jpeg(640, 480), huge=b"x")
    sizes = photo_sizes(("small", 900), ("large", 20_000), ("huge", 30_000_000))
    async with polling(engine(store), fake):
        answer = await Chat(fake, ALICE).say(None, caption="what is this?", **sizes)
    assert answer == "re:what is this?\n\n[an image photo-ularge.jpg, 640x480]"
    assert fake.downloads == ["large"]


async def test_a_voice_note_is_transcribed_and_quoted(store: MemoryStore, fake: FakeBotApi) -> None:
    fake.files["v1"] = samples.ogg_voice()
    voice = {
        "voice": {"file_id": "v1", "file_unique_id": "vu1", "duration": 2, "mime_type": "audio/ogg"}
    }
    async with polling(engine(store), fake):
        answer = await Chat(fake, ALICE).say(None, **voice)
    assert answer == "🎤 “hi there”\n\nre:hi there"


async def test_a_text_document_is_read(store: MemoryStore, fake: FakeBotApi) -> None:
    fake.files["d1"] = b"print('hi')\n"
    document = {"document": {"file_id": "d1", "file_unique_id": "du1", "file_name": "hi.py"}}
    async with polling(engine(store), fake):
        answer = await Chat(fake, ALICE).say(None, caption="review", **document)
    # the fenced block is shown as Telegram's code block (the fences become markup)
    assert answer.startswith("re:review\n\nhi.py:\n") and answer.endswith("print('hi')")


async def test_a_zip_sent_as_a_png_is_refused_the_caption_answered(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    fake.files["z"] = samples.zip_file()
    document = {
        "document": {
            "file_id": "z",
            "file_unique_id": "zu",
            "file_name": "cat.png",
            "mime_type": "image/png",
        }
    }
    async with polling(engine(store), fake):
        answer = await Chat(fake, ALICE).say(None, caption="my cat", **document)
    assert answer.startswith("⚠️ cat.png was not used: it is an archive (ZIP)")
    assert answer.endswith("re:my cat")


async def test_a_stalled_download_is_given_up(store: MemoryStore, fake: FakeBotApi) -> None:
    fake.files["slow"] = samples.jpeg()
    fake.stalled_files.add("slow")
    async with polling(engine(store, download_timeout=0.3), fake):
        answer = await Chat(fake, ALICE).say(None, caption="look", **photo_sizes(("slow", 500)))
    assert "did not download within 0.3 s" in answer and answer.endswith("re:look")


async def test_a_group_photo_is_fetched_only_when_addressed(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    fake.files["g"] = samples.jpeg(40, 30)
    async with polling(engine(store), fake):
        chat = Chat(fake, ALICE, chat_id=GROUP_ID)
        await chat.send(None, caption="holiday", **photo_sizes(("g", 500)))
        answer = await chat.say(
            None, caption="and this?", reply_to=bot_message(GROUP_ID, 9), **photo_sizes(("g", 500))
        )
    assert answer == "re:and this?\n\n[an image photo-ug.jpg, 40x30]"
    assert fake.downloads == ["g"]
    assert len(fake.transcript(GROUP_ID)) == 1
