"""Telegram's limits: 429 retry_after, pacing, the 4096-character limit, refused HTML,
network errors and users who blocked the bot."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from bot.messages import ConversationKey, Identity, guest_owner
from bot.store.memory import MemoryStore
from tests.support.fakes import TextBackend
from tests.support.telegram_harness import ALICE, GROUP_ID, Chat, build_engine, polling
from tests.support.telegram_server import LIMIT, TOKEN, Call, FakeBotApi, tg_len


def draft(call: Call) -> bool:
    return call.text.endswith(" …")


def final(call: Call) -> bool:
    return not draft(call)


@pytest.mark.parametrize(
    ("method", "when", "chunk", "first_delay"),
    [
        pytest.param("sendMessage", draft, 8, 0.0, id="sendMessage-draft"),
        pytest.param("sendMessage", final, 100, 1.0, id="sendMessage-final"),
        pytest.param("editMessageText", draft, 8, 0.0, id="editMessageText-draft"),
        pytest.param("editMessageText", final, 16, 0.0, id="editMessageText-final"),
    ],
)
async def test_429_is_waited_out_and_the_text_delivered(
    store: MemoryStore,
    fake: FakeBotApi,
    method: str,
    when: object,
    chunk: int,
    first_delay: float,
) -> None:
    text = "a reply worth the wait."
    backend = TextBackend(text, chunk=chunk, pause=0.08)
    fake.fail(method, retry_after=1, chat_id=ALICE.id, when=when)  # type: ignore[arg-type]
    async with polling(build_engine(store, backend), fake, first_message_delay=first_delay):
        assert await Chat(fake, ALICE).say("hi", timeout=10) == text
    refused = [c for c in fake.calls_to(method, ALICE.id) if c.status == 429]
    assert len(refused) == 1, "the scripted 429 happened"
    later = [w for w in fake.writes(ALICE.id) if w.at > refused[0].at]
    assert later, "writes went on after the 429"
    assert later[0].at - refused[0].at >= 0.95, "retry_after was honoured"
    assert later[-1].text == text


@pytest.mark.parametrize(
    ("group", "interval"),
    [pytest.param(False, 0.25, id="private"), pytest.param(True, 0.5, id="group")],
)
async def test_writes_to_a_chat_keep_the_configured_pace(
    store: MemoryStore, fake: FakeBotApi, group: bool, interval: float
) -> None:
    text = "word " * 60
    backend = TextBackend(text, chunk=5, pause=0.02)  # about 1.2 s of streaming
    chat_id = GROUP_ID if group else ALICE.id
    pace = {"private_edit_interval": 0.25, "group_edit_interval": 0.5}
    async with polling(build_engine(store, backend), fake, **pace):
        chat = Chat(fake, ALICE, chat_id=chat_id)
        prefix = "@persona_bot " if group else ""
        assert await chat.say(prefix + "talk", timeout=10) == text.strip()
    writes = fake.writes(chat_id)
    assert len(writes) >= 3, "the reply streamed"
    gaps = [b.at - a.at for a, b in itertools.pairwise(writes)]
    assert min(gaps) >= interval - 0.02


async def test_a_long_reply_arrives_as_valid_pieces_in_order(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    source, visible = long_reply(10_000)
    backend = TextBackend(source, chunk=700, pause=0.01)
    async with polling(build_engine(store, backend), fake):
        chat = Chat(fake, ALICE)
        await chat.send("tell me everything")

        def complete() -> bool:
            shown = fake.transcript(ALICE.id)
            return "\n\n".join(shown) == visible

        await fake.wait_for(complete, timeout=15)
    shown = fake.shown(ALICE.id)
    assert len(shown) == 3
    for piece in shown:
        assert tg_len(piece.text) <= LIMIT
        assert piece.parse_mode == "HTML", "the HTML was accepted: no tag was cut"
        assert "<b>" in piece.raw and "&lt;tags&gt;" in piece.raw
        assert piece.raw.count("<b>") == piece.raw.count("</b>")
    assert [s.message_id for s in shown] == sorted(s.message_id for s in shown)
    assert all(len(s.text) > LIMIT // 2 for s in shown[:-1]), "no needlessly short pieces"
    assert not [c for c in fake.calls if c.status == 400 and c.method != "getUpdates"]


def long_reply(size: int) -> tuple[str, str]:
    """Markdown source of ``size`` characters in paragraphs, and its visible text."""
    source: list[str] = []
    visible: list[str] = []
    n = 0
    while sum(len(p) + 2 for p in source) < size - 400:
        sentences = [
            (
                f"Point {n}.{k} is about **containers** & <tags> in `step {k}`.",
                f"Point {n}.{k} is about containers & <tags> in step {k}.",
            )
            for k in range(6)
        ]
        source.append(" ".join(s for s, _ in sentences))
        visible.append(" ".join(v for _, v in sentences))
        n += 1
    filler = "x" * (size - sum(len(p) + 2 for p in source))
    source.append(filler)
    visible.append(filler)
    text = "\n\n".join(source)
    assert len(text) == size
    return text, "\n\n".join(visible)


async def test_refused_html_falls_back_to_plain_text(
    store: MemoryStore, fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse_html = True
    backend = TextBackend("**Docker** packs apps & their <deps>.", chunk=10, pause=0.05)
    async with polling(build_engine(store, backend), fake):
        reply = await Chat(fake, ALICE).say("what is docker?")
    assert reply == "Docker packs apps & their <deps>."
    assert fake.shown(ALICE.id)[-1].parse_mode is None
    assert "formatting" in caplog.text


async def test_network_errors_are_retried(store: MemoryStore, fake: FakeBotApi) -> None:
    fake.fail("sendMessage", code=502, description="Bad Gateway", chat_id=ALICE.id, times=2)
    async with polling(build_engine(store), fake):
        assert await Chat(fake, ALICE).say("hello") == "re:hello saw:[]"
    assert [c.status for c in fake.calls_to("sendMessage", ALICE.id)][:3] == [502, 502, 200]


async def test_a_user_who_blocked_the_bot_is_handled_quietly(
    store: MemoryStore, fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.blocked.add(ALICE.id)
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE)
        await chat.send("are you there?")
        key = ConversationKey(guest_owner(Identity("telegram", str(ALICE.id))), "ada", "direct")

        for _ in range(100):  # the engine stores the reply once the stream is read
            if len((await store.load_window(key, 10)).turns) == 2:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the reply is kept although it could not be shown")
        assert {c.status for c in fake.calls if c.chat_id == ALICE.id} == {403}
        fake.blocked.clear()  # unblocked: the bot answers again
        assert await chat.say("back?") == "re:back? saw:[are you there?]"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_no_message_text_or_token_in_the_logs(
    store: MemoryStore, fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with polling(build_engine(store), fake):
        await Chat(fake, ALICE).say("my secret diary")
    assert caplog.records, "the adapter logs something at INFO"
    assert "secret diary" not in caplog.text
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text


async def test_a_draft_the_user_deleted_is_sent_afresh(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    text = "a reply whose first draft the user deleted while it was written."
    backend = TextBackend(text, chunk=8, pause=0.1)  # about 0.8 s of streaming
    async with polling(build_engine(store, backend), fake):
        await Chat(fake, ALICE).send("hi")
        await fake.wait_for(lambda: bool(fake.shown(ALICE.id)))
        deleted = fake.shown(ALICE.id)[0].message_id
        fake.chats[ALICE.id].pop(deleted)  # as the user's client deletes it
        await fake.wait_for_text(ALICE.id, "deleted while", timeout=10)
    gone = [c for c in fake.calls_to("editMessageText", ALICE.id) if c.status == 400]
    assert gone, "an edit of the deleted draft was refused"
    assert fake.transcript(ALICE.id) == [text], "sent afresh, whole"
    assert fake.shown(ALICE.id)[0].message_id != deleted
