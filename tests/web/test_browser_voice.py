"""Voice in real Chromium: after ``/voice on`` a reply gets an audio player that loads
the reply's audio (a real WAV from the fake speech endpoint); when the speech server is
down, a short line takes the player's place and the text stays. And a voice note
recorded on the page (a fake microphone) goes out through the attach path."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from adapters.web import WebAdapter, create_app
from auth import AccountService
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import WebSettings
from bot.engine_parts import build_engine
from bot.messages import AttachmentKind, account_owner
from bot.personas import PersonaLibrary
from bot.store.sqlite import SqliteStore
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PERSONAS
from tests.support.speech_samples import FakeOpenAI, speaking
from tests.web.test_browser_chat import DESKTOP, say, sign_up

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def site_url(tmp_path: Path, oai: FakeOpenAI) -> AsyncIterator[str]:
    async with SqliteStore(tmp_path / "chat.db") as store:
        engine = build_engine(
            store,
            PersonaLibrary.from_directory(PERSONAS),
            ReplyGuard({"offline": OfflineBackend(seed=3)}, GuardPolicy()),
        )
        settings = WebSettings(host="127.0.0.1", port=0)
        app = create_app(engine, AccountService(store), upkeep=store, settings=settings)
        adapter = WebAdapter(app, access_log=False)
        async with speaking(engine, oai.url, format="wav", timeout=2), adapter:
            yield adapter.url


async def test_a_reply_read_aloud_gets_a_player_that_loads(
    site_url: str,
    browser: Browser,
    oai: FakeOpenAI,
) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    await sign_up(page, site_url, "Vera")
    await say(page, "/voice on")
    await say(page, "What is Docker?")
    player = page.locator(".turn.assistant").last.locator("audio.voice")
    await expect(player).to_have_count(1, timeout=10_000)
    # the audio loaded: the browser knows its length (0.3 s of silence)
    await page.wait_for_function(
        "() => { const a = document.querySelector('audio.voice'); return a && a.readyState >= 1 }",
        timeout=10_000,
    )
    duration = await player.evaluate("audio => audio.duration")
    assert 0.2 < duration < 0.4
    assert [s["response_format"] for s in oai.speeches][:1] == ["wav"]
    await page.close()


async def test_a_speech_server_that_is_down_leaves_the_text_and_a_note(
    site_url: str,
    browser: Browser,
    oai: FakeOpenAI,
) -> None:
    oai.speech_status = 500
    page = await browser.new_page(viewport=DESKTOP)
    await sign_up(page, site_url, "Wes")
    await say(page, "/voice on")
    await say(page, "What is Docker?")
    last = page.locator(".turn.assistant").last
    await expect(last.locator(".voice-note")).to_have_text(
        "🔇 This reply could not be read aloud just now.", timeout=10_000
    )
    assert (await last.locator(".text").inner_text()).strip()  # the text stays
    await page.close()


@pytest.fixture
async def microphone_browser(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Browser]:
    """Chromium with a fake microphone (a beep) that needs no permission prompt."""
    with tempfile.TemporaryDirectory(prefix="pb-chromium-", dir="/tmp") as home:
        monkeypatch.setenv("HOME", home)
        monkeypatch.setenv("TMPDIR", home)
        async with async_playwright() as playwright:
            chromium = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[
                    *CHROMIUM_ARGS,
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                ],
                headless=True,
            )
            yield chromium
            await chromium.close()


async def test_a_voice_note_recorded_on_the_page_is_sent_as_a_file(
    site_url: str, microphone_browser: Browser, tmp_path: Path
) -> None:
    page = await microphone_browser.new_page(viewport=DESKTOP)
    await sign_up(page, site_url, "Rosa")
    record = page.locator("#record")
    await expect(record).to_be_visible()
    await record.click()
    await expect(page.locator("#attached")).to_contain_text("Recording")
    await page.wait_for_timeout(800)
    await record.click()
    await expect(page.locator("#attached")).to_have_text(re.compile(r"📎 voice-note\.(webm|ogg)"))
    await page.click("#send")
    await expect(page.locator(".turn.user").last).to_contain_text("📎 voice-note.")
    await expect(page.locator(".turn.pending")).to_have_count(0, timeout=20_000)
    # the bot received audio (no transcription here: the persona says it cannot hear it)
    async with SqliteStore(tmp_path / "chat.db") as store:
        account = await store.find_account("Rosa")
        assert account is not None
        [conversation] = await store.export_owner(account_owner(account.id))
    [note] = [a for t in conversation.turns if t.role == "user" for a in t.attachments]
    assert note.kind is AttachmentKind.AUDIO and note.media_type in ("audio/webm", "audio/ogg")
    await page.close()
