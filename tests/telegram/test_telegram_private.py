"""A private conversation end to end: the real PTB polling the fake Bot API server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot import engine_parts
from bot.backends.guard import ReplyGuard
from bot.commands import COMMANDS
from bot.config import EngineSettings, RateLimitSettings
from bot.errors import BackendUnavailable
from bot.messages import Identity, guest_owner
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from tests.support.fakes import ScriptedBackend, WindowEcho, make_persona
from tests.support.telegram_harness import (
    ALICE,
    FAST_SETTINGS,
    POLICY,
    Chat,
    accounts,
    build_engine,
    polling,
)
from tests.support.telegram_server import FakeBotApi


async def test_start_registers_commands_and_polls(store: MemoryStore, fake: FakeBotApi) -> None:
    async with polling(build_engine(store), fake) as adapter:
        assert adapter.username == "persona_bot"
        assert adapter.web_routes() == []
        chat = Chat(fake, ALICE)
        greeting = await chat.say("/start")
    assert greeting.startswith("Hello Alice, I am Professor Ada.")
    registered = fake.calls_to("setMyCommands")[0].params["commands"]
    assert [c["command"] for c in registered] == [c.name for c in COMMANDS]
    assert all(1 <= len(c["description"]) <= 256 for c in registered)
    assert fake.calls_to("deleteWebhook"), "polling removes a webhook first"
    polls = fake.calls_to("getUpdates")
    assert polls[0].params["allowed_updates"] == ["message", "callback_query"]


async def test_chat_streams_by_editing_one_message(store: MemoryStore, fake: FakeBotApi) -> None:
    backend = WindowEcho(chunk=4, pause=0.1)  # "re:hello saw:[]" in 4 slow pieces
    async with polling(build_engine(store, backend), fake):
        reply = await Chat(fake, ALICE).say("hello")
    assert reply == "re:hello saw:[]"
    writes = fake.writes(ALICE.id)
    assert writes[0].method == "sendMessage"
    assert len(writes) >= 3 and {w.method for w in writes[1:]} == {"editMessageText"}
    assert len({w.params.get("message_id") for w in writes[1:]}) == 1, "one message edited"
    drafts = [w.text for w in writes[:-1]]
    assert all(d.endswith(" …") for d in drafts), "a draft never looks complete"
    assert writes[-1].text == "re:hello saw:[]"
    gaps = [b.at - a.at for a, b in itertools.pairwise(writes)]
    assert min(gaps) >= FAST_SETTINGS["private_edit_interval"] - 0.02
    assert fake.calls_to("sendChatAction", ALICE.id)[0].params["action"] == "typing"


async def test_conversation_end_to_end(store: MemoryStore, fake: FakeBotApi) -> None:
    service = accounts(store)
    account = await service.sign_up("alice", "correct horse battery")
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE)
        assert "Professor Ada" in await chat.say("/start")
        assert await chat.say("one") == "re:one saw:[]"
        assert await chat.say("two") == "re:two saw:[one]"

        assert "New conversation with Professor Ada" in await chat.say("/reset")
        assert await chat.say("three") == "re:three saw:[]"

        assert "You are now talking to Captain Morrow" in await chat.say("/persona morrow")
        assert "Captain Morrow (morrow)" in await chat.say("/persona")
        assert await chat.say("ahoy") == "re:ahoy saw:[]"

        code = await service.create_link_code(account.id)
        assert '"alice"' in await chat.say(f"/link {code}")
        linked = await chat.say("/link confirm move")
        assert "Linked:" in linked and "You now talk to Professor Ada" in linked
        assert "Linked to the account alice" in await chat.say("/whoami")
        # the account's persona wins; the moved history is there with each persona
        assert await chat.say("still here?") == "re:still here? saw:[three]", "history kept"
        await chat.say("/persona morrow")
        assert await chat.say("and here?") == "re:and here? saw:[ahoy]"

        assert "/forget confirm" in await chat.say("/forget")
        assert "Done" in await chat.say("/forget confirm")
        assert await chat.say("anyone?") == "re:anyone? saw:[]"


@pytest.mark.parametrize(
    "command",
    [pytest.param("/start link-{code}", id="deep-link"), pytest.param("/link {code}", id="link")],
)
async def test_link_with_a_code_from_the_web(
    store: MemoryStore, fake: FakeBotApi, command: str
) -> None:
    service = accounts(store)
    account = await service.sign_up("alice", "correct horse battery")
    code = await service.create_link_code(account.id)
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE)
        assert '"alice"' in await chat.say(command.format(code=code))
        assert "Linked:" in await chat.press("Link to alice")
        assert await chat.say(command.format(code=code)) != "", "answers a used code too"
    linked = await service.identities(account.id)
    assert [(i.platform, i.user_id) for i in linked] == [("telegram", str(ALICE.id))]


async def test_formatting_goes_out_as_escaped_html(store: MemoryStore, fake: FakeBotApi) -> None:
    async with polling(build_engine(store), fake):
        reply = await Chat(fake, ALICE).say("**bold** <b>not a tag</b> & `x<y`")
    assert reply == "re:bold <b>not a tag</b> & x<y saw:[]"
    final = fake.shown(ALICE.id)[-1]
    assert final.parse_mode == "HTML"
    assert (
        final.raw == "re:<b>bold</b> &lt;b&gt;not a tag&lt;/b&gt; &amp; <code>x&lt;y</code> saw:[]"
    )


async def test_an_error_after_some_text_replaces_the_draft(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    class Stalls(ScriptedBackend):
        async def reply(self, *args: Any, **kwargs: Any) -> AsyncIterator[str]:
            yield "half a thought"
            await asyncio.sleep(0.2)  # shown as a draft meanwhile
            raise BackendUnavailable("down")

    async with polling(build_engine(store, Stalls("stalls", [])), fake):
        reply = await Chat(fake, ALICE).say("think")
    assert "half a thought" not in reply and "/retry" in reply
    assert [s.text for s in fake.shown(ALICE.id)] == [reply], "one message, the final text"
    assert any(w.text == "half a thought …" for w in fake.writes(ALICE.id)), "a draft was shown"


async def test_the_fallback_note_is_on_the_final_message(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    """The final text is redrawn from the finished reply: the note must survive it."""
    primary_fails = ScriptedBackend("primary", [BackendUnavailable("down")] * 4)
    spare = ScriptedBackend("spare", [], default="spare answer")
    persona = make_persona("ada", "Professor Ada", backend="primary", fallback=("spare",))
    engine = engine_parts.build_engine(
        store,
        PersonaLibrary([persona]),
        ReplyGuard({"primary": primary_fails, "spare": spare}, POLICY),
        settings=EngineSettings(fallback_note=True),
        rate_limit=RateLimitSettings(per_minute=1e6, burst=1000),
    )
    async with polling(engine, fake):
        shown = await Chat(fake, ALICE).say("hello")
    assert shown.startswith("spare answer") and "a backup answered" in shown
    owner = guest_owner(Identity("telegram", str(ALICE.id)))
    stored = (await store.export_owner(owner))[0].turns[-1].text
    assert stored == "spare answer", "the note is not stored"
