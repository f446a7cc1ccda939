"""The terminal chat: each reply is labelled with the persona that wrote it."""

from __future__ import annotations

import io
from pathlib import Path

from adapters.console import ConsoleChat
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.engine_parts import build_engine
from bot.personas import PersonaLibrary, load_card
from bot.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent


async def test_a_persona_switch_relabels_the_next_reply() -> None:
    personas = PersonaLibrary(
        [load_card(ROOT / "personas" / name) for name in ("ada.toml", "captain-morrow.toml")]
    )
    async with MemoryStore() as store:
        engine = build_engine(
            store, personas, ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy())
        )
        out = io.StringIO()
        chat = ConsoleChat(
            engine,
            user_name="Tess",
            stdin=io.StringIO("/persona captain-morrow\nhello there\n"),
            stdout=out,
            interactive=True,
        )
        await chat.run()
    replies = [line for line in out.getvalue().split("you> ") if line.strip()]
    assert replies[-2].startswith("Professor Ada> You are now talking to Captain Morrow")
    assert replies[-1].startswith("Captain Morrow> ")
