"""The persona's picture and name on the chat page, in a real browser: in the header
and on each reply, served with its content type and caching, and following a
``/persona`` switch without a reload."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from adapters.web import WebAdapter, create_app
from auth import AccountService
from bot.avatar import default_avatar_png
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.card_export import card_png
from bot.config import WebSettings
from bot.engine_parts import build_engine
from bot.personas import PersonaLibrary, load_card
from bot.store.sqlite import SqliteStore
from tests.support.browser import CHROMIUM, Site, watch_console
from tests.support.web_client import PASSWORD

ROOT = Path(__file__).parents[2]
CARD = ROOT / "tests" / "personas" / "cards" / "lighthouse_v3.json"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture
def personas(tmp_path: Path) -> Path:
    """The shipped TOML personas and a PNG card (its image a plain square)."""
    directory = tmp_path / "personas"
    shutil.copytree(ROOT / "personas", directory)
    card = load_card(CARD).card
    assert card is not None
    (directory / "iris.png").write_bytes(card_png(card, default_avatar_png("Iris", size=32)))
    return directory


@pytest.fixture
async def site(tmp_path: Path, personas: Path) -> AsyncIterator[Site]:
    async with SqliteStore(tmp_path / "browser.db") as store:
        engine = build_engine(
            store,
            PersonaLibrary.from_directory(personas, "ada"),
            ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy()),
        )
        settings = WebSettings(host="127.0.0.1", port=0)
        app = create_app(engine, AccountService(store), upkeep=store, settings=settings)
        adapter = WebAdapter(app, access_log=False)
        async with adapter:
            yield Site(adapter.url, engine, store)


async def sign_up(page: Page, url: str) -> None:
    await page.goto(url + "/signup")
    await page.fill("input[name=username]", "sam")
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=confirm]", PASSWORD)
    await page.click("button[type=submit]:has-text('Sign up')")
    await expect(page).to_have_url(url + "/chat")


async def image_loaded(page: Page, selector: str) -> bool:
    return bool(
        await page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")
    )


async def test_avatar_and_name_follow_the_persona(
    site: Site,
    browser: Browser,
    personas: Path,
) -> None:
    page = await browser.new_page()
    problems = watch_console(page)
    await sign_up(page, site.url)

    header = page.locator("#persona-avatar")
    await expect(page.locator("#persona-name")).to_have_text("Professor Ada")
    await expect(header).to_have_attribute("src", "/personas/ada/avatar")
    assert await image_loaded(page, "#persona-avatar")  # the default badge
    greeting = page.locator(".turn.assistant").first
    await expect(greeting.locator(".author")).to_have_text("Professor Ada")
    await expect(greeting.locator(".author img")).to_have_attribute("src", "/personas/ada/avatar")

    await page.fill("#message", "/persona captain-iris-vale")
    await page.click("#send")
    await expect(page.locator("#persona-name")).to_have_text("Captain Iris Vale")
    await expect(header).to_have_attribute("src", "/personas/captain-iris-vale/avatar")
    await expect(page.locator("#message")).to_have_attribute(
        "placeholder", "Write to Captain Iris Vale…"
    )
    await expect(page).to_have_title("Chat with Captain Iris Vale · PersonaBridge")
    await expect(page.locator("#persona-select")).to_have_value("captain-iris-vale")
    # the new conversation, opened by Iris's greeting, under Iris's name and picture
    first = page.locator(".turn").first
    await expect(first.locator(".author")).to_have_text("Captain Iris Vale")
    await expect(first.locator(".text")).to_contain_text("Welcome to the rock, sam.")
    assert await image_loaded(page, "#persona-avatar")

    await page.fill("#message", "Is the lamp lit?")
    await page.click("#send")
    reply = page.locator(".turn.assistant").last
    await expect(reply).to_have_class("turn assistant", timeout=10_000)
    await expect(reply.locator(".author")).to_have_text("Captain Iris Vale")
    await expect(reply.locator(".author img")).to_have_attribute(
        "src", "/personas/captain-iris-vale/avatar"
    )

    # after a reload the page says the same
    await page.reload()
    await expect(page.locator("#persona-name")).to_have_text("Captain Iris Vale")
    labels = await page.locator(".turn.assistant .author").all_inner_texts()
    assert labels and set(labels) == {"Captain Iris Vale"}
    assert problems == []


async def test_the_avatar_is_the_card_image_with_type_and_caching(
    site: Site,
    browser: Browser,
    personas: Path,
) -> None:
    page = await browser.new_page()
    png = await page.request.get(site.url + "/personas/captain-iris-vale/avatar")
    assert png.status == 200 and png.headers["content-type"] == "image/png"
    assert await png.body() == (personas / "iris.png").read_bytes()  # the card itself
    assert png.headers["cache-control"] == "public, max-age=3600"
    etag = png.headers["etag"]
    again = await page.request.get(
        site.url + "/personas/captain-iris-vale/avatar", headers={"If-None-Match": etag}
    )
    assert again.status == 304
    svg = await page.request.get(site.url + "/personas/ada/avatar")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert (await svg.body()).startswith(b"<svg")
    missing = await page.request.get(site.url + "/personas/nobody/avatar")
    assert missing.status == 404
