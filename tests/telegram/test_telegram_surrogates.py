"""A text with a lone surrogate (JSON may spell ``"\\ud800"``) still gets its answer.

The length check (UTF-16 code units, as Telegram counts) used to run on the raw text
and raise on the surrogate, so the message was dropped without a word.
"""

from __future__ import annotations

import pytest

from adapters.telegram.render import tg_len
from bot.messages import Identity, guest_owner
from bot.store.memory import MemoryStore
from tests.support.telegram_harness import ALICE, GROUP_ID, Chat, build_engine, polling
from tests.support.telegram_server import FakeBotApi

LONE = "half of a pair: \ud83d and \udc00 here"


def test_tg_len_counts_a_lone_surrogate_as_one_unit() -> None:
    assert tg_len("\ud800") == 1
    assert tg_len("a\ud83d\ude00") == 3  # a pair written out is two units, as Telegram counts


@pytest.mark.parametrize("chat_id", [None, GROUP_ID], ids=["private", "group"])
async def test_a_lone_surrogate_gets_a_reply(
    store: MemoryStore, fake: FakeBotApi, chat_id: int | None
) -> None:
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE, chat_id=chat_id)
        text = LONE if chat_id is None else f"@persona_bot {LONE}"
        answer = await chat.say(text)
    assert answer
    records = await store.export_owner(guest_owner(Identity("telegram", str(ALICE.id))))
    stored = [turn.text for record in records for turn in record.turns if turn.role == "user"]
    assert stored and "\ufffd" in stored[0], stored
