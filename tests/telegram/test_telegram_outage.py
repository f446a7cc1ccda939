"""A Bot API outage longer than a few retries loses no reply: a reply's final text is
tried again, backing off, until the API is back (within ``delivery_patience``).

The fake Bot API answers every write with 503 while ``down``; before the fix the reply
was dropped after three attempts in about four seconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from bot.store.memory import MemoryStore
from tests.support.telegram_harness import ALICE, FAST, Chat, build_engine, polling
from tests.support.telegram_server import FakeBotApi

WRITES = ("sendMessage", "editMessageText")


@dataclass(frozen=True)
class ServerError:
    status: int = 503
    retry_after: float = 0.0
    applied: bool = False


class Outage:
    """Every write fails with 503 while ``down`` (a FaultSource for the fake)."""

    def __init__(self) -> None:
        self.down = False
        self.refused = 0

    def decide(self, key: str) -> ServerError | None:
        if self.down and key.split(":")[0] in WRITES:
            self.refused += 1
            return ServerError()
        return None


async def test_a_reply_outlasts_an_outage(store: MemoryStore, fake: FakeBotApi) -> None:
    outage = Outage()
    fake.faults = outage
    options = replace(FAST, retry_backoff=0.01, retry_backoff_max=0.05)
    async with polling(build_engine(store), fake, options, delivery_patience=60.0):
        chat = Chat(fake, ALICE)
        outage.down = True
        await chat.send("are you there?")
        # far more failed attempts than the old three retries allowed
        await fake.wait_for(lambda: outage.refused >= 12, timeout=10.0)
        assert fake.shown(chat.chat_id) == [], "nothing got through during the outage"
        outage.down = False
        await fake.wait_for(
            lambda: any(
                "are you there?" in s.text and not s.text.endswith(" …")
                for s in fake.shown(chat.chat_id)
            ),
            timeout=10.0,
        )


async def test_the_patience_is_bounded(store: MemoryStore, fake: FakeBotApi) -> None:
    """With no patience left the reply is given up (and the next message still works)."""
    outage = Outage()
    fake.faults = outage
    options = replace(FAST, retry_backoff=0.01, retry_backoff_max=0.02)
    async with polling(build_engine(store), fake, options, delivery_patience=0.2):
        chat = Chat(fake, ALICE)
        outage.down = True
        await chat.send("first")
        await fake.wait_for(lambda: outage.refused >= 3, timeout=5.0)
        # well past the patience: the attempts have stopped
        await asyncio.sleep(1.0)
        settled = outage.refused
        await asyncio.sleep(0.5)
        assert outage.refused == settled, "still trying after the patience was spent"
        outage.down = False
        assert await chat.say("second")
