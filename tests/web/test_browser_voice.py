"""Replies read aloud in real Chromium: after ``/voice on`` a reply gets an audio
player that loads the reply's audio (a real WAV from the fake speech endpoint); when the
speech server is down, a short line takes the player's place and the text stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from speech_samples import FakeOpenAI, speaking
from test_browser import CHROMIUM, PERSONAS, browser  # noqa: F401 - the browser fixture
from test_browser_chat import DESKTOP, say, sign_up

from adapters.web import WebAdapter
from auth import AccountService
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import WebSettings
from bot.engine import Engine
from bot.personas import PersonaLibrary
from bot.store.sqlite import SqliteStore

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def site_url(tmp_path: Path, oai: FakeOpenAI) -> AsyncIterator[str]:
    async with SqliteStore(tmp_path / "chat.db") as store:
        engine = Engine(
            store,
            PersonaLibrary.from_directory(PERSONAS),
            ReplyGuard({"offline": OfflineBackend(seed=3)}, GuardPolicy()),
        )
        adapter = WebAdapter(
            engine, AccountService(store), WebSettings(host="127.0.0.1", port=0), access_log=False
        )
        async with speaking(engine, oai.url, format="wav", timeout=2), adapter:
            yield adapter.url


async def test_a_reply_read_aloud_gets_a_player_that_loads(
    site_url: str,
    browser: Browser,  # noqa: F811
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
    browser: Browser,  # noqa: F811
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
