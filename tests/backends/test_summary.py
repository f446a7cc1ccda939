"""Running summaries of long conversations: made in the background once the window
overflows, stored with the conversation, passed to later prompts, never mixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bot.backends.base import Summarised, TokenUsage
from bot.backends.offline import OfflineBackend
from bot.backends.openai import OpenAIBackend
from bot.config import EngineSettings
from bot.messages import ReplyKind, Turn
from bot.personas import Persona
from bot.store.base import Usage
from bot.store.memory import MemoryStore
from bot.summary import StoredSummary, _clip, dropped_turns
from tests.support.backend_harness import build_engine, card
from tests.support.engine import dm, key, reply
from tests.support.openai_server import FakeOpenAI

#: A window of four turns; two dropped turns are worth a summary.
SMALL = EngineSettings(window_max_turns=4, summary_batch_turns=2, window_max_chars=100_000)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def openai(server: FakeOpenAI) -> AsyncIterator[OpenAIBackend]:
    backend = OpenAIBackend(base_url=server.url, model="m")
    yield backend
    await backend.aclose()


def turns(*texts: str, start: int = 1) -> list[Turn]:
    roles = ("user", "assistant")
    return [Turn(start + n, roles[n % 2], text, "x", 0.0) for n, text in enumerate(texts)]  # type: ignore[arg-type]


def summary_of(body: dict[str, Any]) -> str:
    system = body["messages"][0]["content"]
    marker = "Summary of the conversation so far:\n"
    return system.split(marker, 1)[1] if marker in system else ""


# -- end to end, with OpenAIBackend -------------------------------------------------------


async def test_summary_is_made_once_the_window_overflows_and_goes_into_later_prompts(
    server: FakeOpenAI, openai: OpenAIBackend, store: MemoryStore
) -> None:
    engine = build_engine(store, [openai], [card()], settings=SMALL)
    for n in range(1, 4):  # six turns: the fourth message's window drops the first two
        await reply(engine, dm("alice", f"a{n}"))
    await engine.summaries.wait()
    assert server.summary_requests == []
    assert summary_of(server.chat_requests[-1]) == ""

    await reply(engine, dm("alice", "a4"))
    await engine.summaries.wait()
    (made,) = server.summary_requests
    assert "a1" in made["messages"][1]["content"]
    window = await store.load_window(key("alice"), 10)
    assert StoredSummary.decode(window.summary) == StoredSummary("Gist: a1; You said: a1", 2)

    await reply(engine, dm("alice", "a5"))
    body = server.chat_requests[-1]
    assert summary_of(body) == "Gist: a1; You said: a1"
    chat = [m for m in body["messages"][1:-1] if m["role"] != "system"]  # not the examples
    assert [m["content"] for m in chat] == [
        "a3",
        "You said: a3",
        "a4",
        "You said: a4",
        "a5",
    ]
    await engine.summaries.wait()  # a2 and its reply now fold into the running summary
    assert StoredSummary.decode((await store.load_window(key("alice"), 1)).summary) == (
        StoredSummary("Gist: a1; You said: a1; a2; You said: a2", 4)
    )
    # what summaries cost counts for the owner, too: 5 replies, 2 summaries
    assert await store.get_usage(key("alice").owner) == Usage(5 * 11 + 2 * 20, 5 * 3 + 2 * 5, 7)
    await engine.aclose()


async def test_summaries_never_mix_two_owners(
    server: FakeOpenAI, openai: OpenAIBackend, store: MemoryStore
) -> None:
    engine = build_engine(store, [openai], [card()], settings=SMALL)
    for n in range(1, 7):
        await asyncio.gather(
            reply(engine, dm("alice", f"alice-{n}")), reply(engine, dm("bob", f"bob-{n}"))
        )
        await engine.summaries.wait()
    assert len(server.summary_requests) >= 4
    for body in server.requests:
        text = str(body["messages"])
        assert not ("alice-" in text and "bob-" in text), text
    for user, other in (("alice", "bob"), ("bob", "alice")):
        summary = StoredSummary.decode((await store.load_window(key(user), 1)).summary)
        assert f"{user}-1" in summary.text and f"{user}-2" in summary.text
        assert other not in summary.text
    await engine.aclose()


@pytest.mark.parametrize(
    ("backend_name", "settings"),
    [
        pytest.param("offline", SMALL, id="offline-backend"),
        pytest.param("openai", SMALL.model_copy(update={"summary": False}), id="switched-off"),
    ],
)
async def test_no_summary_when_off(
    server: FakeOpenAI,
    openai: OpenAIBackend,
    store: MemoryStore,
    backend_name: str,
    settings: EngineSettings,
) -> None:
    engine = build_engine(
        store, [openai, OfflineBackend(seed=1)], [card(backend=backend_name)], settings=settings
    )
    for n in range(8):
        assert (await reply(engine, dm("alice", f"m{n}"))).kind is ReplyKind.CHAT
    await engine.summaries.wait()
    assert server.summary_requests == []
    assert (await store.load_window(key("alice"), 1)).summary == ""


# -- in the background: reset, forget and shutdown meanwhile -------------------------------


class GatedSummariser:
    """Echoes; its summaries wait for ``gate`` (and say which turns they saw)."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: dict[str, Any],
        *,
        summary: str = "",
    ) -> AsyncIterator[str]:
        yield f"re:{message.text}"

    async def summarise(
        self, persona: Persona, summary: str, turns: Sequence[Turn], *, max_chars: int
    ) -> Summarised:
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Summarised("saw " + ",".join(t.text for t in turns), TokenUsage(7, 2))

    async def aclose(self) -> None:
        pass


async def overflow(engine: Any, user: str = "alice") -> None:
    for n in range(4):
        await reply(engine, dm(user, f"m{n}"))


@pytest.mark.parametrize(
    "command",
    [pytest.param("/reset", id="reset"), pytest.param("/forget", id="forget")],
)
async def test_a_summary_finished_after_the_conversation_moved_on_is_dropped(
    store: MemoryStore, command: str
) -> None:
    gated = GatedSummariser()
    engine = build_engine(store, [gated], [card(backend="gated")], settings=SMALL)
    await overflow(engine)
    await gated.started.wait()
    await reply(engine, dm("alice", command))
    if command == "/forget":
        await reply(engine, dm("alice", "/forget confirm"))
    gated.gate.set()
    await engine.summaries.wait()
    window = await store.load_window(key("alice"), 10)
    assert window.summary == ""
    if command == "/forget":  # nothing of the forgotten owner comes back
        assert await store.export_owner(key("alice").owner) == []
        assert await store.get_usage(key("alice").owner) == Usage()


async def test_a_summary_is_kept_when_the_conversation_went_on(store: MemoryStore) -> None:
    gated = GatedSummariser()
    engine = build_engine(store, [gated], [card(backend="gated")], settings=SMALL)
    await overflow(engine)
    await gated.started.wait()
    await reply(engine, dm("alice", "meanwhile"))  # one summary at a time: none starts
    gated.gate.set()
    await engine.summaries.wait()
    summary = StoredSummary.decode((await store.load_window(key("alice"), 1)).summary)
    assert summary == StoredSummary("saw m0,re:m0", 2)
    assert await store.get_usage(key("alice").owner) == Usage(7, 2, 1)


async def test_shutdown_cancels_a_summary_that_takes_too_long(store: MemoryStore) -> None:
    gated = GatedSummariser()
    engine = build_engine(store, [gated], [card(backend="gated")], settings=SMALL)
    await overflow(engine)
    await gated.started.wait()
    await engine.aclose(grace=0.05)
    assert gated.cancelled
    assert (await store.load_window(key("alice"), 1)).summary == ""
    await reply(engine, dm("alice", "after close"))  # no new summary starts
    assert engine.summaries.running == 0


# -- the pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("", StoredSummary(), id="empty"),
        pytest.param(StoredSummary("gist", 12).encode(), StoredSummary("gist", 12), id="ours"),
        pytest.param("written by hand", StoredSummary("written by hand", 0), id="plain-text"),
        pytest.param('{"text": 1}', StoredSummary('{"text": 1}', 0), id="other-json"),
    ],
)
def test_stored_summary_decodes(raw: str, expected: StoredSummary) -> None:
    assert StoredSummary.decode(raw) == expected


@pytest.mark.parametrize(
    ("through", "history", "context_from", "expected"),
    [
        pytest.param(0, turns("a", "b", "c", "d"), 3, ["a", "b"], id="from-start"),
        pytest.param(1, turns("a", "b", "c", "d"), 3, ["b"], id="partly-summarised"),
        pytest.param(2, turns("a", "b", "c", "d"), 3, [], id="all-summarised"),
        pytest.param(0, turns("a", "b", "c", "d"), None, ["a", "b", "c", "d"], id="no-context"),
        pytest.param(
            0,
            [*turns("q", "old"), Turn(3, "assistant", "new", "x", 0), *turns("c", start=4)],
            4,
            ["q", "new"],
            id="retried-reply",
        ),
    ],
)
def test_dropped_turns(
    through: int, history: list[Turn], context_from: int | None, expected: list[str]
) -> None:
    context = [t for t in history if context_from is not None and t.seq >= context_from]
    dropped = dropped_turns(StoredSummary("s", through), history, context)
    assert [t.text for t in dropped] == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("  short  ", 100, "short", id="fits"),
        pytest.param("One. Two three four five.", 20, "One. Two three four…", id="short-sentence"),
        pytest.param("First sentence here. Second one.", 25, "First sentence here.", id="sentence"),
        pytest.param("alpha beta gamma delta", 15, "alpha beta…", id="words"),
    ],
)
def test_clip(text: str, limit: int, expected: str) -> None:
    clipped = _clip(text, limit)
    assert clipped == expected and len(clipped) <= limit
