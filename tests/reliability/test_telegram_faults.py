"""Telegram under platform faults: the real adapter (real python-telegram-bot, polling)
against the fake Bot API while it answers a share of the bot's writes with 429
(``retry_after`` 0 or 1 s) and 5xx, a real engine on a real SQLite file.

Each run prints its counts (messages sent, replies delivered, turns stored, lost,
leaked) and asserts that nothing was lost or leaked and that faults were injected.

What the adapter must do (``adapters/telegram/delivery.py``): a 429 moves the chat's
next write back by ``retry_after``, then a write that must arrive (the final text) is
sent again and a progress edit is skipped; a 5xx is retried with backoff a bounded
number of times. A 5xx answered after the write took effect is harmless for an edit
(repeating it meets "message is not modified", which counts as done); for a new
message Telegram offers no way to tell, and the adapter sends it again (a duplicate
rather than a lost reply): the last test pins that trade-off.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.errors import BackendUnavailable
from bot.messages import Identity, guest_owner
from bot.store.sqlite import SqliteStore
from tests.support.fakes import TextBackend
from tests.support.platform_faults import (
    FaultPlan,
    Sent,
    Tally,
    Visible,
    answered,
    count,
    private_text_in,
    settle,
    token,
    words,
)
from tests.support.telegram_harness import FAST, Person, build_engine, message, polling, update
from tests.support.telegram_server import LIMIT, TOKEN, FakeBotApi, tg_len

PRIVATE_USERS = 20
GROUPS = (-100_701, -100_702)
USERS_PER_GROUP = 5
MESSAGES_EACH = 3
CURSOR = " …"
#: Replies settle within seconds; the bound is generous for a loaded machine.
SETTLE_TIMEOUT = 60.0

#: Private and group intervals as in the harness; 5xx retried twice, quickly.
OPTIONS = replace(FAST, network_retries=2, retry_backoff=0.02)


@dataclass(frozen=True)
class Speaker:
    number: int
    person: Person
    chat_id: int

    @property
    def private(self) -> bool:
        return self.chat_id > 0


def speakers() -> list[Speaker]:
    people = [Person(70_000 + n, f"User{n:02d}") for n in range(PRIVATE_USERS + 10)]
    found = [Speaker(n, people[n], people[n].id) for n in range(PRIVATE_USERS)]
    grouped = itertools.count(PRIVATE_USERS)
    for group in GROUPS:
        for _ in range(USERS_PER_GROUP):
            n = next(grouped)
            found.append(Speaker(n, people[n], group))
    return found


def owner_of(speaker: Speaker) -> Sent:
    """A template Sent for the speaker (user and conversation)."""
    owner = guest_owner(Identity("telegram", str(speaker.person.id)))
    scope = "direct" if speaker.private else f"telegram:{speaker.chat_id}"
    return Sent(speaker.number, -1, "", owner, scope, f"chat:{speaker.chat_id}")


async def send_all(fake: FakeBotApi, people: list[Speaker], per_person: int) -> list[Sent]:
    """Every speaker's messages, round robin, as fast as the fake takes them: a group
    message mentions the bot (Telegram marks the mention; the adapter strips it)."""
    message_ids: dict[int, itertools.count[int]] = {}
    sent: list[Sent] = []
    for index in range(per_person):
        for speaker in people:
            stored = f"{token(speaker.number, index)} hello number {index}"
            text = stored if speaker.private else f"@persona_bot {stored}"
            ids = message_ids.setdefault(speaker.chat_id, itertools.count(1))
            message_id = next(ids)
            body = message(speaker.person, text, chat_id=speaker.chat_id, message_id=message_id)
            await fake.push_update(update(body))
            quoted = None if speaker.private else str(message_id)
            sent.append(replace(owner_of(speaker), index=index, text=stored, message_id=quoted))
    return sent


def visible_replies(fake: FakeBotApi, chats: set[int]) -> list[Visible]:
    return [
        Visible(
            f"chat:{chat}",
            shown.text,
            answered(shown.text),
            None if shown.reply_to is None else str(shown.reply_to),
        )
        for chat in sorted(chats)
        for shown in fake.shown(chat)
    ]


async def test_thirty_users_lose_and_leak_nothing_under_429s_and_5xx(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    plan = FaultPlan(
        seed="telegram-many",
        rate_limited=0.15,
        server_errors=0.10,
        retry_after=(0.0, 1.0),
        # An edit that took effect before its 5xx is repeated: "not modified" is done.
        applied=1.0,
        applied_to=r"^editMessageText:",
    )
    people = speakers()
    chats = {p.chat_id for p in people}
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        fake.faults = plan
        async with polling(build_engine(store), fake, OPTIONS):
            sent = await send_all(fake, people, MESSAGES_EACH)

            async def measure() -> Tally:
                return await count("telegram", store, sent, visible_replies(fake, chats))

            await settle(measure, timeout=SETTLE_TIMEOUT)
        tally = await measure()

    print(tally.line(plan))
    assert tally.lost == 0, tally.problems[:5]
    assert tally.leaked == 0, tally.problems[:5]
    assert tally.sent == len(people) * MESSAGES_EACH == tally.delivered
    assert tally.stored == 2 * tally.sent
    assert tally.duplicated == 0, "only edits were applied before their 5xx"
    assert plan.count("429") >= 10 and plan.count("5") >= 10, plan.injected
    assert plan.count("502 applied") + plan.count("500 applied") >= 1, plan.injected
    assert all(not t.endswith(CURSOR) for c in chats for t in fake.transcript(c))
    assert not private_text_in(caplog.text, [TOKEN, TOKEN.split(":")[1]])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def numbered_text(count: int) -> str:
    """``count`` numbered words in sentences and paragraphs: about 6,100 characters
    for 1,000, so a reply of it needs two messages."""
    sentences = [
        " ".join(f"w{n:04d}" for n in range(start, min(start + 10, count))) + "."
        for start in range(0, count, 10)
    ]
    return "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))


async def test_a_long_reply_arrives_whole_and_in_order_under_faults(tmp_path: Path) -> None:
    text = numbered_text(1000)
    assert len(text) > LIMIT + 1000
    plan = FaultPlan(
        seed="telegram-long",
        rate_limited=0.2,
        server_errors=0.15,
        retry_after=(0.0, 1.0),
        applied=0.5,
        applied_to=r"^editMessageText:",
    )
    people = [Person(71_000 + n, f"Reader{n}") for n in range(3)]
    backend = TextBackend(text, chunk=400, pause=0.03)  # streamed: drafts, then two messages
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        fake.faults = plan
        async with polling(build_engine(store, backend), fake, OPTIONS):
            sent = []
            for n, person in enumerate(people):
                await fake.push_update(update(message(person, f"{token(n, 0)} tell me")))
                owner = guest_owner(Identity("telegram", str(person.id)))
                sent.append(Sent(n, 0, f"{token(n, 0)} tell me", owner, "direct", f"chat:{n}"))

            def visible() -> list[Visible]:
                # One reply per chat: its messages, joined, are the reply.
                return [
                    Visible(f"chat:{n}", "\n".join(fake.transcript(p.id)), (n, 0))
                    for n, p in enumerate(people)
                    if fake.transcript(p.id)
                ]

            async def measure() -> Tally:
                return await count("telegram long", store, sent, visible(), same=words)

            await settle(measure, timeout=SETTLE_TIMEOUT)
        tally = await measure()

    print(tally.line(plan))
    assert tally.lost == 0, tally.problems[:5]
    assert tally.leaked == 0 and tally.delivered == len(people)
    for person in people:
        pieces = fake.transcript(person.id)
        assert len(pieces) == 2, "split in two, no piece repeated or left over"
        assert all(tg_len(piece) <= LIMIT for piece in pieces)
        assert words("\n".join(pieces)) == words(text), "complete and in order"
    assert plan.total >= 5, plan.injected


async def test_a_draft_that_fails_past_its_retries_does_not_lose_the_reply(
    tmp_path: Path,
) -> None:
    """The first draft meets more 5xx in a row than the retry budget: the draft is
    skipped, like a progress edit hit by a 429, and the reply still arrives."""
    alice = Person(72_001, "Alice")
    text = "a slow answer, written in three parts over a little time"
    backend = TextBackend(text, chunk=20, pause=0.3)
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        retries = OPTIONS.network_retries
        fake.fail("sendMessage", code=502, description="Bad Gateway", times=retries + 1)
        async with polling(build_engine(store, backend), fake, OPTIONS):
            await fake.push_update(update(message(alice, "hello")))
            await fake.wait_for_text(alice.id, text, timeout=10)
    statuses = [c.status for c in fake.calls_to("sendMessage", alice.id)]
    assert statuses[: retries + 1] == [502] * (retries + 1), "the draft failed past its retries"
    assert fake.transcript(alice.id) == [text]


async def test_a_message_sent_before_its_5xx_is_repeated_not_lost(tmp_path: Path) -> None:
    """Telegram cannot say whether a sendMessage answered 502 took effect; the
    adapter sends it again: the reply shows in full, at worst twice."""
    alice = Person(72_002, "Alice")
    plan = FaultPlan(
        seed="telegram-applied",
        rate_limited=0.0,
        server_errors=1.0,
        statuses=(502,),
        only=r"^sendMessage:",
        applied=1.0,
        applied_to=r"^sendMessage:",
        max_in_a_row=1,  # every other send: the repeat goes through
    )
    # The whole reply is ready before the first message may go: one send, no drafts.
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        fake.faults = plan
        async with polling(build_engine(store), fake, OPTIONS, first_message_delay=2.0):
            await fake.push_update(update(message(alice, "hello")))
            await fake.wait_for(lambda: len(fake.transcript(alice.id)) == 2, timeout=10)
            await asyncio.sleep(0.3)  # nothing more follows
    assert fake.transcript(alice.id) == ["re:hello saw:[]"] * 2
    assert plan.injected == {"502 applied": 1}


async def test_a_reply_failing_past_its_retries_is_given_up_quietly_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every send answered 503: the adapter keeps trying for ``delivery_patience``
    seconds (not just ``network_retries`` times: an outage must not lose a reply), then
    logs the failure without the text, keeps the turns (``/retry`` can show the reply
    later) and answers the next message once Telegram is back."""
    caplog.set_level(logging.INFO)
    alice = Person(72_004, "Alice")
    # The whole reply is ready before the first message may go: one send, no drafts.
    options = replace(OPTIONS, retry_backoff_max=0.05)
    patience = {"first_message_delay": 1.0, "delivery_patience": 0.5}
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        fake.fail("sendMessage", code=503, description="Service Unavailable", times=1000)
        async with polling(build_engine(store), fake, options, **patience):
            await fake.push_update(update(message(alice, "my secret diary", message_id=1)))
            await fake.wait_for(lambda: "could not deliver" in caplog.text, timeout=10)
            tries = len(fake.calls_to("sendMessage", alice.id))
            fake.clear_failures()  # Telegram is back
            await fake.push_update(update(message(alice, "again", message_id=2)))
            await fake.wait_for_text(alice.id, "re:again", timeout=10)
        owner = guest_owner(Identity("telegram", str(alice.id)))
        [record] = await store.export_owner(owner)
    assert tries > options.network_retries + 1
    assert [t.text for t in record.turns] == [
        "my secret diary",
        "re:my secret diary saw:[]",
        "again",
        "re:again saw:[my secret diary]",
    ]
    assert fake.transcript(alice.id) == ["re:again saw:[my secret diary]"]
    assert "secret diary" not in caplog.text


class BreakingBackend(TextBackend):
    """Streams its text, then fails: the reply ends as the engine's error message."""

    async def reply(self, *args: Any, **kwargs: Any) -> AsyncIterator[str]:
        async for delta in super().reply(*args, **kwargs):
            yield delta
        await asyncio.sleep(0.3)  # the drafts show all of it first
        raise BackendUnavailable("the model went away")


async def test_a_leftover_draft_is_deleted_even_after_a_429(tmp_path: Path) -> None:
    """A long draft (two messages) ends in a short error: the second draft message
    is deleted, though the first delete is answered 429."""
    alice = Person(72_003, "Alice")
    backend = BreakingBackend(numbered_text(1000), chunk=1000, pause=0.05)
    async with FakeBotApi() as fake, SqliteStore(tmp_path / "bot.db") as store:
        fake.fail("deleteMessage", code=429, retry_after=1)
        async with polling(build_engine(store, backend), fake, OPTIONS):
            await fake.push_update(update(message(alice, "hello")))
            await fake.wait_for(lambda: len(fake.calls_to("deleteMessage")) >= 2, timeout=10)
            await fake.wait_for(lambda: len(fake.transcript(alice.id)) == 1, timeout=5)
        shown = fake.transcript(alice.id)
    assert [c.status for c in fake.calls_to("deleteMessage")] == [429, 200]
    assert len(shown) == 1 and not shown[0].endswith(CURSOR), shown
