"""A real browser end to end: headless Chromium (Debian's) driven by Playwright.

Sign up, log out, log in, create a link code, redeem it through the engine as a
Telegram identity, see it on the account page, chat with the reply streaming in, log
out. Everything runs on loopback over SQLite and the offline backend; the page's
console must stay free of errors (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from bot.messages import DIRECT_SCOPE, Incoming, account_owner
from tests.support.browser import NEEDS_CHROMIUM, Site, watch_console
from tests.support.web_client import PASSWORD, ask

pytestmark = NEEDS_CHROMIUM


async def test_sign_up_link_chat_and_log_out_in_a_real_browser(
    site: Site, browser: Browser
) -> None:
    page = await browser.new_page()
    problems = watch_console(page)

    # sign up, log out, log in
    await page.goto(site.url + "/signup")
    await page.fill("input[name=username]", "Ada")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=confirm]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign up')")
    await expect(page).to_have_url(site.url + "/chat")
    await page.click("#logout")
    await expect(page.locator(".notice")).to_have_text("You are logged out.")
    await page.goto(site.url + "/account")
    await expect(page).to_have_url(site.url + "/login?next=/account")
    await page.fill("input[name=username]", "ada")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]:has-text('Log in')")
    await expect(page).to_have_url(site.url + "/account")

    # a link code, redeemed on "Telegram" through the engine
    await page.click("#new-link-code")
    code = (await page.locator("#link-code").inner_text()).strip()
    await expect(page.locator("pre.command")).to_have_text(f"/link {code}")
    deep_link = page.locator("a[href^='https://t.me/personabridge_bot?start=link-']")
    await expect(deep_link).to_have_attribute(
        "href", f"https://t.me/personabridge_bot?start=link-{code}"
    )

    def on_telegram(text: str) -> Incoming:
        return Incoming("telegram", "4242", "Ada on Telegram", "4242", True, text)

    asked = await ask(site.engine, on_telegram(f"/link {code}"))
    assert '"Ada"' in asked
    assert (await ask(site.engine, on_telegram("/link confirm"))).startswith("Linked:")
    await page.goto(site.url + "/account")
    row = page.locator("tr.identity")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("telegram")
    await expect(row).to_contain_text("Ada on Telegram")
    notice = page.locator("#notices .notice-item")
    await expect(notice).to_have_count(1)
    await expect(notice).to_contain_text("linked to the Telegram account Ada on Telegram")

    # chat: the reply streams in, then settles
    await page.goto(site.url + "/chat")
    await expect(page.locator(".turn.assistant").first).to_contain_text("Ada")  # greeting
    await page.fill("#message", "What is Docker?")
    await page.click("#send")
    await expect(page.locator(".turn.user .text").last).to_have_text("What is Docker?")
    await page.wait_for_selector(".turn.assistant.pending .text:not(:empty)")  # mid-stream
    reply = page.locator(".turn.assistant").last
    await expect(reply).to_have_class("turn assistant", timeout=10_000)  # done: not pending
    shown = (await reply.locator(".text").inner_text()).strip()
    assert shown
    account = await site.store.find_account("ada")
    assert account is not None
    turns = await site.engine.recent_turns(account_owner(account.id), "ada", DIRECT_SCOPE)
    # the greeting the page opened with is the conversation's first turn
    assert [t.role for t in turns] == ["assistant", "user", "assistant"]
    assert [t.text for t in turns][1:] == ["What is Docker?", shown]

    # log out
    await page.click("#logout")
    await expect(page).to_have_url(site.url + "/?done=logged_out")
    await page.goto(site.url + "/chat")
    await expect(page).to_have_url(site.url + "/login?next=/chat")
    assert problems == []


async def test_attach_an_image_and_a_text_file_in_a_real_browser(
    site: Site, browser: Browser
) -> None:
    import tests.support.media_samples as samples

    page = await browser.new_page()
    problems = watch_console(page)
    await page.goto(site.url + "/signup")
    await page.fill("input[name=username]", "Pix")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=confirm]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign up')")
    await expect(page).to_have_url(site.url + "/chat")

    # an image alone: the offline persona says it cannot see it
    image = {"name": "cat.png", "mimeType": "image/png", "buffer": samples.png(64, 32)}
    await page.set_input_files("#attachment", files=[image])
    await expect(page.locator("#attached")).to_have_text("📎 cat.png")
    await page.click("#send")
    await expect(page.locator(".turn.user .text").last).to_have_text("📎 cat.png")
    reply = page.locator(".turn.assistant").last
    await expect(reply).to_have_class("turn assistant", timeout=10_000)
    await expect(reply.locator(".text")).to_contain_text("can't see pictures")

    # a text file with a question in it, and a caption
    notes = {"name": "q.txt", "mimeType": "text/plain", "buffer": b"What is Docker?"}
    await page.set_input_files("#attachment", files=[notes])
    await page.fill("#message", "read this")
    await page.click("#send")
    await expect(page.locator(".turn.user .text").last).to_have_text("read this\n📎 q.txt")
    reply = page.locator(".turn.assistant").last
    await expect(reply).to_have_class("turn assistant", timeout=10_000)

    account = await site.store.find_account("pix")
    assert account is not None
    turns = await site.engine.recent_turns(account_owner(account.id), "ada", DIRECT_SCOPE)
    said = [t for t in turns if t.role == "user"]  # (the greeting may be stored first)
    files = [(t.text, [(a.filename, a.media_type, a.width) for a in t.attachments]) for t in said]
    assert files == [
        ("", [("cat.png", "image/png", 64)]),
        ("read this", [("q.txt", "text/plain", 0)]),
    ]
    assert turns[-1].text == (await reply.locator(".text").inner_text()).strip()

    # the history shows the files by name
    await page.reload()
    await expect(page.locator(".turn.user .file").first).to_have_text("📎 cat.png")
    assert problems == []
