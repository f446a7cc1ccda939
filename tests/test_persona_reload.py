"""A running PersonaBridge (``bot/app.py`` wiring, web page up) picks up persona cards
imported, edited or removed after its start."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.app import PersonaBridge
from bot.engine import Engine
from bot.messages import Incoming, ReplyDone
from tests.support.platform_start import settings_for

ROOT = Path(__file__).resolve().parent.parent
NOVA = """
id = "nova"
name = "Nova Quill"
greeting = "Hi {{user}}, I write poems about stars."
description = "A poet of the night sky."
"""


async def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Poll until ``condition`` holds; fail after a generous ``timeout`` (shared machine)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def ask(engine: Engine, text: str, user: str = "7") -> ReplyDone:
    events = [e async for e in engine.handle(Incoming("test", user, "Sam", user, True, text))]
    done = events[-1]
    assert isinstance(done, ReplyDone)
    return done


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "personas"
    folder.mkdir()
    for name in ("ada.toml", "captain-morrow.toml"):
        shutil.copy(ROOT / "personas" / name, folder / name)
    return folder


@pytest.fixture
async def bridge(tmp_path: Path, personas_dir: Path) -> AsyncIterator[PersonaBridge]:
    settings = settings_for(
        tmp_path, PERSONAS_DIR=str(personas_dir), PERSONAS_RELOAD_INTERVAL="0.05"
    )
    async with PersonaBridge(settings) as running:
        yield running


async def test_a_card_imported_after_the_start_is_offered_on_the_running_site(
    bridge: PersonaBridge, personas_dir: Path
) -> None:
    (web,) = bridge.enabled_adapters()
    async with web, aiohttp.ClientSession() as http:
        async with http.get(f"{web.url}/") as response:  # type: ignore[attr-defined]
            assert "Nova Quill" not in await response.text()  # (and the page is cached)
        (personas_dir / "nova.toml").write_text(NOVA)
        await wait_until(lambda: bridge.personas.find("nova") is not None)
        async with http.get(f"{web.url}/") as response:  # type: ignore[attr-defined]
            assert "Nova Quill" in await response.text()
    assert "nova" in (await ask(bridge.engine, "/personas")).text
    assert "Nova Quill" in (await ask(bridge.engine, "/persona nova")).text
    assert bridge.personas.default.id == "ada", "an import never changes the default"


async def test_a_broken_edit_is_logged_with_file_and_field_and_the_old_card_serves(
    bridge: PersonaBridge, personas_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.persona_watch")
    card = personas_dir / "captain-morrow.toml"
    old = bridge.personas.get("captain-morrow")
    card.write_text(card.read_text() + '\ncolour = "blue"\n')
    await wait_until(lambda: any("not loaded" in r.getMessage() for r in caplog.records))
    warning = next(r for r in caplog.records if "not loaded" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert str(card) in warning.getMessage() and "'colour'" in warning.getMessage()
    assert bridge.personas.get("captain-morrow") is old
    # fixed again: the edit is served
    card.write_text(card.read_text().replace('colour = "blue"', "").replace(old.name, "Cpt. M"))
    await wait_until(lambda: bridge.personas.get("captain-morrow").name == "Cpt. M")


async def test_a_removed_card_stops_being_offered_and_its_talkers_meet_the_default(
    bridge: PersonaBridge, personas_dir: Path
) -> None:
    await ask(bridge.engine, "/persona captain-morrow")
    (personas_dir / "captain-morrow.toml").unlink()
    await wait_until(lambda: bridge.personas.find("captain-morrow") is None)
    assert "captain-morrow" not in (await ask(bridge.engine, "/personas")).text
    reply = await ask(bridge.engine, "hello there")
    assert reply.persona_name == "Professor Ada"
    assert "'captain-morrow' you chose is no longer here" in reply.shown
    assert "no longer here" not in reply.text, "the note is not stored as the persona's words"
    # choosing again ends the note
    await ask(bridge.engine, "/persona ada")
    assert "no longer here" not in (await ask(bridge.engine, "hello again")).shown


async def test_the_default_persona_cannot_be_removed_from_under_the_server(
    bridge: PersonaBridge, personas_dir: Path
) -> None:
    (personas_dir / "ada.toml").unlink()
    (personas_dir / "nova.toml").write_text(NOVA)
    await wait_until(lambda: bridge.personas.find("nova") is not None)
    assert bridge.personas.default.id == "ada"


async def test_reloading_can_be_switched_off(tmp_path: Path, personas_dir: Path) -> None:
    settings = settings_for(tmp_path, PERSONAS_DIR=str(personas_dir), PERSONAS_RELOAD_INTERVAL="0")
    async with PersonaBridge(settings) as bridge:
        assert not any(t.get_name() == "reload changed persona cards" for t in asyncio.all_tasks())
        assert bridge.persona_watcher is not None and bridge.persona_watcher.reloads == 0


async def test_an_edit_of_the_options_beside_an_imported_card_is_picked_up(
    bridge: PersonaBridge, personas_dir: Path
) -> None:
    import json

    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Nova Quill"}}
    (personas_dir / "nova.json").write_text(json.dumps(card))
    await wait_until(lambda: bridge.personas.find("nova-quill") is not None)
    (personas_dir / "nova.personabridge.toml").write_text('id = "nova"\n')
    await wait_until(lambda: bridge.personas.find("nova") is not None)
    assert bridge.personas.find("nova-quill") is None, "the same card, under its new id"
