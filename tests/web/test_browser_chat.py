"""The chat page in real Chromium, as a first-time user meets it: the rate limit never
loses a message, Retry shows that it wrote again, and the page reads like a chat app
(composer in view, history scrolling, newest at the bottom) on a desktop and a phone."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from adapters.web import WebAdapter, create_app
from auth import AccountService
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import RateLimitSettings, WebSettings
from bot.engine_parts import build_engine
from bot.personas import PersonaLibrary
from bot.store.sqlite import SqliteStore
from tests.support.browser import CHROMIUM, PERSONAS
from tests.support.web_client import PASSWORD

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")

#: Three chat messages at once, then one every 20 s: the fourth quick one is held back.
BURST = 3
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
async def site_url(tmp_path: Path) -> AsyncIterator[str]:
    async with SqliteStore(tmp_path / "chat.db") as store:
        engine = build_engine(
            store,
            PersonaLibrary.from_directory(PERSONAS),
            ReplyGuard({"offline": OfflineBackend(seed=3)}, GuardPolicy()),
            rate_limit=RateLimitSettings(per_minute=3, burst=BURST),
        )
        settings = WebSettings(host="127.0.0.1", port=0)
        app = create_app(engine, AccountService(store), upkeep=store, settings=settings)
        adapter = WebAdapter(app, access_log=False)
        async with adapter:
            yield adapter.url


async def sign_up(page: Page, url: str, name: str) -> None:
    await page.goto(url + "/signup")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=confirm]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign up')")
    await expect(page).to_have_url(url + "/chat")


async def say(page: Page, text: str) -> None:
    """Send ``text`` and wait until its answer has settled."""
    answers = await page.locator(".turn:not(.user)").count()
    await page.fill("#message", text)
    await page.click("#send")
    await expect(page.locator(".turn:not(.user)")).to_have_count(answers + 1, timeout=20_000)
    await expect(page.locator(".turn.pending")).to_have_count(0, timeout=20_000)


async def test_a_rate_limited_message_stays_in_the_composer_as_a_system_notice(
    site_url: str,
    browser: Browser,
) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    await sign_up(page, site_url, "Rita")
    await expect(page).to_have_title("Chat with Professor Ada · PersonaBridge")

    await say(page, "What is Docker?")  # 1 of the burst
    await say(page, "/whoami")
    await page.click("#retry")  # 2: Retry writes the reply again, in its place, and says so
    regenerated = page.locator(".turn.assistant:has(.mark)")
    await expect(regenerated.locator(".mark")).to_have_text("regenerated", timeout=20_000)
    await expect(page.locator(".turn.pending")).to_have_count(0, timeout=20_000)
    order = await page.locator(".turn .text").all_inner_texts()
    asked = order.index("What is Docker?")
    assert order[asked + 2] == "/whoami", "the reply to Docker was replaced where it was"
    assert "You are Rita" in order[asked + 3], "the command's answer stays"
    for command in ("/help", "/whoami", "/personas", "/persona", "/help"):  # free: they only read
        await say(page, command)
    await say(page, "How do I test asyncio code?")  # 3: the last of the burst
    assert await page.locator(".turn.system").count() == 0

    await page.fill("#message", "This one is too quick")
    notes = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"What is Docker?"}
    await page.set_input_files("#attachment", files=[notes])
    await page.click("#send")
    notice = page.locator(".turn.system").last
    await expect(notice).to_contain_text("you can send it in")
    seconds = int(re.search(r"in (\d+) s", await notice.inner_text()).group(1))  # type: ignore[union-attr]
    assert seconds >= 1, "never '0 s'"
    await expect(page.locator("#message")).to_have_value("This one is too quick")
    await expect(page.locator("#attached")).to_have_text("📎 notes.txt")  # the file too
    assert await page.eval_on_selector("#attachment", "input => input.files.length") == 1
    await expect(page.locator("#send")).to_be_disabled()
    assert "Slow down" not in await page.locator(".turn.assistant").last.inner_text()
    assert await page.locator(".turn.user", has_text="This one is too quick").count() == 0

    await page.reload()  # the held-back text survives a reload too
    await expect(page.locator("#message")).to_have_value("This one is too quick")
    await page.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone-390x844"])
async def test_the_composer_stays_in_view_and_the_history_scrolls(
    site_url: str,
    browser: Browser,
    viewport: dict[str, int],
    tmp_path: Path,
) -> None:
    page = await browser.new_page(viewport=viewport)
    await sign_up(page, site_url, "Sami")
    for _ in range(4):  # long answers that only read: no rate limit in the way
        await say(page, "/help")
    sizes = await page.evaluate(
        """() => {
          const log = document.getElementById("log");
          const box = document.getElementById("message").getBoundingClientRect();
          const logout = document.getElementById("logout");
          return {
            pageScrolls: document.scrollingElement.scrollHeight > window.innerHeight + 1,
            composerBottom: box.bottom,
            logScrolls: log.scrollHeight > log.clientHeight,
            atBottom: log.scrollHeight - log.scrollTop - log.clientHeight < 4,
            logoutHeight: logout.getBoundingClientRect().height,
            lineHeight: parseFloat(getComputedStyle(logout).lineHeight),
            aboutOpen: document.querySelector("details.about").open,
          };
        }"""
    )
    assert not sizes["pageScrolls"], "the page itself does not scroll: the history does"
    assert sizes["composerBottom"] <= viewport["height"], "the composer is in view"
    assert sizes["logScrolls"] and sizes["atBottom"], "newest at the bottom, older above"
    assert sizes["logoutHeight"] < 2 * sizes["lineHeight"], "'Log out' on one line"
    assert sizes["aboutOpen"] is False, "the persona's description is folded away"
    await page.screenshot(path=str(tmp_path / "chat.png"))
    await page.close()
