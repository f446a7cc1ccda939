"""Fuzzing the Discord boundary: hostile MESSAGE_CREATE events and slash commands
through the fake gateway to the real discord.py client and our adapter, then the
message splitter on its own with arbitrary text.

As for Telegram, one adapter serves every example of a test; Hypothesis runs in a
worker thread and hands each example to the adapter's event loop, which keeps running
between examples. An example is over once a later message from a sentinel user is
answered (gateway events are parsed in order) and no reply is in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cache
from typing import Any, TypeVar

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from adapters.discord import DiscordAdapter
from adapters.discord.adapter import STALE_COMMAND
from adapters.discord.commands import SLASH_COMMANDS, TOO_LONG_REPLY
from adapters.discord.render import FENCE, split_message
from adapters.discord.streaming import ENGINE_FAILED
from bot.engine import Engine
from bot.messages import DIRECT_SCOPE, ConversationKey, OwnerId
from bot.store.sqlite import SqliteStore
from tests.support import engine as engine_support
from tests.support.discord_harness import (
    ALICE,
    FAST,
    guild_create,
    message,
    running,
    slash,
)
from tests.support.discord_server import BOT, FakeDiscord, user
from tests.support.fakes import WindowEcho
from tests.support.payloads import (
    DC_TOKENS,
    SLASH_COMMAND_OPTIONS,
    Compact,
    compact,
    discord_messages,
    discord_slash_commands,
    hostile_texts,
    huge_texts,
    mixed_texts,
)
from tests.support.stores import store_kinds

T = TypeVar("T")
SENTINEL = user(7_000_000_001, "sentinel")
SENTINEL_CHANNEL = 7_001
LIMIT = 2000
WAIT = 60.0
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
OURS = ("adapters", "bot", "auth")
NO_MENTIONS = {"parse": []}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.guilds.append(guild_create())
        yield server


store_kind = store_kinds("sqlite")


def engine(store: SqliteStore) -> Engine:
    """A real SQLite store and a backend that echoes what it was sent (hostile text
    comes back through the splitter), streamed in several deltas without pauses. The
    rate limit is the engine's tests' business: here it would only refuse."""
    return engine_support.build_engine(
        store, WindowEcho(chunk=64), policy=FAST, rate_limit=engine_support.UNLIMITED
    )


def in_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[T]], T]:
    """Run an awaitable on the adapter's loop from Hypothesis' thread, and wait for it."""

    def run(awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(WAIT)

    return run


# -- what every example checks -------------------------------------------------------------


def sent_content(body: Any) -> str | None:
    """The text a REST call puts in a message, if it carries one."""
    if not isinstance(body, dict):
        return None
    if "content" in body:
        return str(body["content"])
    data = body.get("data")
    return str(data["content"]) if isinstance(data, dict) and "content" in data else None


def mentions_of(body: dict[str, Any]) -> Any:
    data = body.get("data")
    return body["allowed_mentions"] if "content" in body else data.get("allowed_mentions")


class Observer:
    """What the bot sent and logged since a mark, and the checks on it."""

    def __init__(self, fake: FakeDiscord, caplog: pytest.LogCaptureFixture):
        self.fake = fake
        self.caplog = caplog

    def mark(self) -> tuple[int, int]:
        return len(self.fake.calls), len(self.caplog.records)

    def check_since(self, mark: tuple[int, int], adapter: DiscordAdapter, sent: list[str]) -> None:
        calls, records = mark
        for call in self.fake.calls[calls:]:
            content = sent_content(call.body)
            if content is None:
                continue
            where = f"{call.method} {call.path}"
            assert content.strip(), f"{where} sent a blank message"
            assert len(content) <= LIMIT, f"{where} sent {len(content)} characters"
            assert mentions_of(call.body) == NO_MENTIONS, f"{where} may ping: {call.body}"
        texts = [t for t in sent if len(t.strip()) >= 16]
        for record in self.caplog.records[records:]:
            where = f"{record.name}: {record.getMessage()[:300]}"
            assert record.levelno < logging.ERROR, f"an error was logged: {where}"
            if record.exc_info is not None:
                assert not record.name.startswith(OURS), f"a traceback was logged: {where}"
            if record.levelno >= logging.INFO:
                leaked = next((t for t in texts if t in record.getMessage()), None)
                assert leaked is None, f"message text was logged: {where}"
        client = adapter.client
        assert client is not None and not client.is_closed(), "the client disconnected"
        assert self.fake.gateways, "the gateway connection is gone"


_sentinels = itertools.count()


async def settled(fake: FakeDiscord, adapter: DiscordAdapter, timeout: float = WAIT) -> None:
    """Until every event sent so far is handled: a later DM from the sentinel is
    answered (discord.py parses events in order and starts their handlers in order)
    and no reply is in flight."""
    number = next(_sentinels)
    text = f"sentinel {number}"
    payload = message(text, guild=False, person=SENTINEL) | {"channel_id": str(SENTINEL_CHANNEL)}
    await fake.dispatch("MESSAGE_CREATE", payload)

    def answered() -> bool:
        shown = fake.transcript(channel=SENTINEL_CHANNEL)
        return any(s.startswith(f"re:{text} ") for s in shown) and adapter.replies_in_flight == 0

    await fake.wait_for(answered, timeout)


# -- gateway messages ----------------------------------------------------------------------


@pytest.mark.timeout(110)
async def test_gateway_takes_hostile_messages_without_a_crash(
    fake: FakeDiscord, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    observer = Observer(fake, caplog)
    async with running(fake, engine(store)) as adapter:
        run = in_loop(asyncio.get_running_loop())

        @settings(max_examples=40, phases=NO_SHRINK)
        @given(batch=compact(st.lists(discord_messages(), min_size=1, max_size=3)))
        def fuzz(batch: list[dict[str, Any]]) -> None:
            mark = observer.mark()
            for payload in batch:
                run(fake.dispatch("MESSAGE_CREATE", payload))
            run(settled(fake, adapter))
            observer.check_since(mark, adapter, [p["content"] for p in batch])

        await asyncio.to_thread(fuzz)
        hello = message("<@1000> still there?", mentions=[BOT])
        await fake.dispatch("MESSAGE_CREATE", hello)
        await fake.wait_for(
            lambda: any(s.startswith("re:still there? ") for s in fake.transcript(channel=600)),
            WAIT,
        )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("a" * 4001, id="one-past-the-limit"),
        pytest.param("<@1000> " + "word " * 20_000, id="100k-mention-in-a-guild"),
    ],
)
async def test_a_message_longer_than_discord_allows_gets_a_clear_answer(
    fake: FakeDiscord, store: SqliteStore, content: str
) -> None:
    guild = content.startswith("<@1000>")
    async with running(fake, engine(store)) as adapter:
        await fake.dispatch(
            "MESSAGE_CREATE", message(content, guild=guild, mentions=[BOT] if guild else [])
        )
        await settled(fake, adapter)
    channel = 600 if guild else 700
    assert fake.transcript(channel=channel) == [TOO_LONG_REPLY]
    scope = f"discord:{channel}" if guild else DIRECT_SCOPE
    key = ConversationKey(OwnerId(f"guest:discord:{ALICE['id']}"), "ada", scope)
    assert not (await store.load_window(key, 10)).turns, "nothing of it was stored"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(message("x", guild=False) | {"content": None}, id="content-null"),
        pytest.param(message("x", guild=False) | {"content": 5}, id="content-a-number"),
        pytest.param(
            message("<@1000> hi", mentions=[BOT]) | {"content": ["<@1000>"]}, id="content-a-list"
        ),
        pytest.param(
            message("hi", guild=False, person=user(44, "x") | {"username": None}),
            id="no-username",
        ),
    ],
)
async def test_a_message_without_text_content_is_ignored_quietly(
    fake: FakeDiscord, store: SqliteStore, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    observer = Observer(fake, caplog)
    async with running(fake, engine(store)) as adapter:
        mark = observer.mark()
        await fake.dispatch("MESSAGE_CREATE", payload)
        await settled(fake, adapter)
        observer.check_since(mark, adapter, [])
    posts = fake.find("POST", r"^/channels/\d+/messages$")
    answered = {c.path for c in posts} - {f"/channels/{SENTINEL_CHANNEL}/messages"}
    if isinstance(payload["content"], str):  # the name is odd, the message is fine
        assert answered == {"/channels/700/messages"}
    else:
        assert answered == set()


@pytest.mark.timeout(60)
async def test_an_event_discord_py_cannot_parse_does_not_end_the_connection(
    fake: FakeDiscord, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(fake, engine(store)):
        broken = {k: v for k, v in message("x", guild=False).items() if k != "content"}
        await fake.dispatch("MESSAGE_CREATE", broken)
        await fake.dispatch("MESSAGE_CREATE", message("and now?", guild=False))

        def answered() -> bool:
            return any(s.startswith("re:and now? ") for s in fake.transcript(channel=700))

        def gave_up() -> bool:
            return any(
                r.name == "adapters.discord.client" and r.levelno >= logging.ERROR
                for r in caplog.records
            )

        await fake.wait_for(lambda: answered() or gave_up(), WAIT)
        assert answered(), "the message after the broken event was answered"
        skipped = [r.getMessage() for r in caplog.records if "could not read" in r.getMessage()]
        assert skipped == ["discord: skipped a MESSAGE_CREATE event it could not read (KeyError)"]


# -- slash commands ------------------------------------------------------------------------


def test_the_strategy_knows_every_slash_command() -> None:
    assert set(SLASH_COMMAND_OPTIONS) == set(SLASH_COMMANDS)


@pytest.mark.timeout(110)
async def test_slash_commands_with_hostile_options_are_answered_once(
    fake: FakeDiscord, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    observer = Observer(fake, caplog)
    async with running(fake, engine(store)) as adapter:
        run = in_loop(asyncio.get_running_loop())

        def answered(payload: dict[str, Any]) -> bool:
            return bool(fake.find("POST", rf"^/interactions/{payload['id']}/"))

        @settings(max_examples=40, phases=NO_SHRINK)
        @given(shown=discord_slash_commands().map(lambda payload: Compact([payload])))
        def fuzz(shown: list[dict[str, Any]]) -> None:
            [payload] = shown
            mark = observer.mark()
            run(fake.dispatch("INTERACTION_CREATE", payload))
            run(fake.wait_for(lambda: answered(payload) and adapter.replies_in_flight == 0, WAIT))
            observer.check_since(mark, adapter, _option_texts(payload))
            callbacks = fake.find("POST", rf"^/interactions/{payload['id']}/")
            assert len(callbacks) == 1, "answered exactly once"
            if callbacks[0].body["type"] == 5:  # deferred: the reply replaces "thinking…"
                final = fake.transcript(token=payload["token"])
                assert final, "a deferred command got its reply"
                assert final[0] != ENGINE_FAILED, final[0]

        await asyncio.to_thread(fuzz)
        hello = slash("chat", message="still there?")
        await fake.dispatch("INTERACTION_CREATE", hello)
        await fake.wait_for(lambda: fake.transcript(token=hello["token"]), WAIT)
        await fake.wait_for(lambda: adapter.replies_in_flight == 0, WAIT)
        assert fake.transcript(token=hello["token"])[0].startswith("re:still there? saw:")


def _option_texts(payload: dict[str, Any]) -> list[str]:
    return [str(o["value"]) for o in payload["data"]["options"] if isinstance(o["value"], str)]


@pytest.mark.parametrize(
    ("name", "option", "size"),
    [
        pytest.param("chat", "message", 4001, id="chat-one-past-the-limit"),
        pytest.param("chat", "message", 100_000, id="chat-100k"),
        # The engine quotes an unknown persona id back: 100k would come back as 50 messages.
        pytest.param("persona", "id", 100_000, id="persona-100k"),
        pytest.param("link", "code", 100_000, id="link-100k"),
    ],
)
async def test_a_slash_command_longer_than_discord_allows_gets_a_clear_answer(
    fake: FakeDiscord, store: SqliteStore, name: str, option: str, size: int
) -> None:
    async with running(fake, engine(store)):
        payload = slash(name, **{option: "b" * size})
        await fake.dispatch("INTERACTION_CREATE", payload)
        call = await fake.wait_for(
            lambda: fake.find("POST", rf"^/interactions/{payload['id']}/"), WAIT
        )
    assert call[0].body["type"] == 4
    assert call[0].body["data"]["content"] == TOO_LONG_REPLY
    assert call[0].body["data"]["flags"] == 64, "only the sender sees it"
    key = ConversationKey(OwnerId(f"guest:discord:{ALICE['id']}"), "ada", "discord:600")
    assert not (await store.load_window(key, 10)).turns, "nothing of it was stored"
    assert len(fake.find("POST", r"^/webhooks/")) == 0, "no follow-ups"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(slash("no-such-command"), id="unknown-command"),
        pytest.param(slash("chat"), id="required-option-missing"),
    ],
)
async def test_a_stale_command_gets_a_clear_answer_and_no_error_log(
    fake: FakeDiscord, store: SqliteStore, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    observer = Observer(fake, caplog)
    async with running(fake, engine(store)) as adapter:
        mark = observer.mark()
        await fake.dispatch("INTERACTION_CREATE", payload)
        call = await fake.wait_for(
            lambda: fake.find("POST", rf"^/interactions/{payload['id']}/"), WAIT
        )
        await fake.wait_for(lambda: adapter.replies_in_flight == 0, WAIT)
        assert sent_content(call[0].body) == STALE_COMMAND
        observer.check_since(mark, adapter, [])


# -- splitting -----------------------------------------------------------------------------

_SPLIT_TEXT = st.one_of(
    mixed_texts(DC_TOKENS, max_tokens=200),
    st.text(max_size=600),
    hostile_texts(DC_TOKENS, huge=False),
    st.lists(st.sampled_from(["```", "```py\n", "`", "\n", " ", "x" * 70, "é"]), max_size=80).map(
        "".join
    ),
)
_LANGUAGE = re.compile(r"[\w+#.-]{1,20}")


def letters(text: str) -> str:
    """``text`` without whitespace and backticks: what a split may not change."""
    return "".join(text.replace("`", "").split())


def follows(pieces: list[str], text: str) -> bool:
    """Whether the pieces are ``text`` in order, give or take whitespace, backticks, and
    the language of a code block reopened at the start of a piece (a cut inside a block
    closes it and opens it again, language included)."""
    rest = letters(text)

    @cache
    def aligned(index: int, at: int) -> bool:
        if index == len(pieces):
            return at == len(rest)
        piece = pieces[index]
        readings = [letters(piece)]
        first_line, _, body = piece.partition("\n")
        language = first_line.removeprefix(FENCE)
        if index and first_line.startswith(FENCE) and _LANGUAGE.fullmatch(language):
            readings.append(letters(body))
        return any(
            rest.startswith(reading, at) and aligned(index + 1, at + len(reading))
            for reading in readings
        )

    return aligned(0, 0)


@settings(max_examples=250)
@given(text=_SPLIT_TEXT, limit=st.integers(min_value=64, max_value=400))
def test_split_pieces_fit_balance_their_fences_and_lose_nothing(text: str, limit: int) -> None:
    pieces = split_message(text, limit)
    for piece in pieces:
        assert piece.strip(), "no blank message"
        assert len(piece) <= limit
        assert piece.count(FENCE) % 2 == 0, f"unbalanced fences: {piece!r}"
    assert follows(pieces, text), pieces


@settings(max_examples=6)
@given(text=huge_texts(min_size=2_001, max_size=100_000))
def test_huge_replies_split_at_discords_limit(text: str) -> None:
    pieces = split_message(text)
    assert all(0 < len(p) <= LIMIT and p.count(FENCE) % 2 == 0 for p in pieces)
    assert follows(pieces, text)


@pytest.mark.timeout(60)
def test_splitting_a_long_reply_of_many_lines_takes_linear_work() -> None:
    # Every cut scanned all the text left to split, so a reply of many short lines took
    # work in the square of its length (3 s for 100 kB of "```\n" lines here, so about
    # 100 s for these 600 kB); the bound is the test's timeout, far above the second or
    # so that linear work needs.
    text = "```\n" * 150_000
    pieces = split_message(text)
    assert len(pieces) >= 300
    assert all(len(p) <= LIMIT and p.count(FENCE) % 2 == 0 for p in pieces)
