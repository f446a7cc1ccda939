"""A backend's reply with a lone surrogate (``"\\ud800"`` in its JSON) is kept and shown,
with U+FFFD in its place: SQLite cannot store the surrogate, and no page can show it."""

from __future__ import annotations

from pathlib import Path

from bot.messages import Identity, ReplyKind, guest_owner
from bot.store.sqlite import SqliteStore
from tests.support.engine import build_engine, dm, send
from tests.support.fakes import ScriptedBackend


async def test_a_reply_with_a_lone_surrogate_is_stored_cleaned(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "pb.db") as store:
        engine = build_engine(store, ScriptedBackend("scripted", ["fine \ud800 thanks"]))
        deltas, done = await send(engine, dm("alice", "how are you?"))
        assert done is not None and done.kind is ReplyKind.CHAT, done
        assert "\ufffd" in done.text
        assert all(part.encode("utf-8") for part in deltas)
        records = await store.export_owner(guest_owner(Identity("telegram", "alice")))
        assert [t.text for t in records[0].turns] == ["how are you?", done.text]
