"""A real browser for the web tests: Debian's headless Chromium, driven by Playwright's
async API (the ``browser`` fixture of ``tests/web/conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page

from bot.engine import Engine
from bot.store.sqlite import SqliteStore

CHROMIUM = Path("/usr/bin/chromium")
#: The personas the app ships.
PERSONAS = Path(__file__).resolve().parents[2] / "personas"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: ``pytestmark`` of a module whose tests drive the browser.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium); `make test` installs it",
)


@dataclass
class Site:
    """The web app serving on loopback, and what it runs on."""

    url: str
    engine: Engine
    store: SqliteStore


def watch_console(page: Page) -> list[str]:
    """The errors the page's console shows from now on (kept up to date)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems
