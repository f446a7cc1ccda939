"""The terminal chat with files: ``/attach`` and how earlier files are shown on resume."""

from __future__ import annotations

import io
from pathlib import Path

import tests.support.media_samples as samples
from adapters.console import ConsoleChat
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.support.fakes import WindowEcho, make_persona


async def chat(engine: Engine, lines: str, *, interactive: bool) -> str:
    out = io.StringIO()
    console = ConsoleChat(
        engine, user_name="Tess", stdin=io.StringIO(lines), stdout=out, interactive=interactive
    )
    await console.run()
    return out.getvalue()


async def test_attach_then_resume_shows_the_files_by_name(tmp_path: Path) -> None:
    photo = tmp_path / "cat.png"
    photo.write_bytes(samples.png(8, 8))
    async with MemoryStore() as store:
        backend = WindowEcho()
        persona = make_persona("ada", "Ada", backend=backend.name)
        engine = build_engine(
            store, PersonaLibrary([persona]), ReplyGuard({"echo": backend}, GuardPolicy())
        )
        await chat(
            engine, f"/attach {photo}\n/attach {tmp_path / 'nope.txt'} hi\n", interactive=False
        )
        assert backend.calls == 1  # the missing file sent nothing
        shown = await chat(engine, "", interactive=True)
    assert "you> 📎 cat.png\n" in shown
