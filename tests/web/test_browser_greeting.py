"""The greeting in a real browser: the page opens a conversation with it, the Retry
button never takes it away, and after a message the Retry button writes a new reply."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from bot.messages import DIRECT_SCOPE, account_owner
from tests.support.browser import CHROMIUM, Site, watch_console
from tests.support.web_client import PASSWORD

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


async def test_retry_keeps_the_greeting_and_rewrites_a_reply(
    site: Site,
    browser: Browser,
) -> None:
    page = await browser.new_page()
    problems = watch_console(page)
    await page.goto(site.url + "/signup")
    await page.fill("input[name=username]", "Robin")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=confirm]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign up')")
    await page.goto(site.url + "/chat")
    greeting = page.locator(".turn.assistant .text").first
    await expect(greeting).to_contain_text("Ah, Robin, come in")

    # Retry before any message: the greeting stays, and the bot says there is nothing
    await page.click("#retry")
    await expect(page.locator(".turn.command .text")).to_have_text("There is nothing to retry yet.")
    await expect(greeting).to_contain_text("Ah, Robin, come in")

    # a message, then Retry: the reply is replaced by a different one
    await page.fill("#message", "How long can a Lambda function run?")
    await page.click("#send")
    last = page.locator(".turn.assistant").last
    await expect(last).to_have_class("turn assistant", timeout=10_000)
    first = (await last.locator(".text").inner_text()).strip()
    await page.click("#retry")
    last = page.locator(".turn.assistant").last
    await expect(last).to_have_class("turn assistant", timeout=10_000)
    second = (await last.locator(".text").inner_text()).strip()
    assert second and second != first
    account = await site.store.find_account("Robin")
    assert account is not None
    turns = await site.engine.recent_turns(account_owner(account.id), "ada", DIRECT_SCOPE)
    assert [t.role for t in turns] == ["assistant", "user", "assistant"]
    assert turns[0].text.startswith("Ah, Robin, come in") and turns[-1].text == second
    assert problems == []
