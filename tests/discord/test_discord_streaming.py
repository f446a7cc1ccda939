"""StreamedReply without Discord: rate, coalescing, final text, failures."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from adapters.discord.errors import DiscordAPIError
from adapters.discord.render import CURSOR
from adapters.discord.streaming import StreamedReply
from adapters.streaming import EMPTY_REPLY


class RecordingSlots:
    """Keeps every show, with the loop time; ``delay`` makes each show slow."""

    def __init__(self, *, delay: float = 0.0, fail: set[int] | None = None):
        self.shows: list[tuple[float, int, str]] = []
        self.messages: list[str] = []
        self._delay = delay
        self._fail = fail or set()
        self._count = itertools.count()

    async def show(self, index: int, text: str) -> None:
        number = next(self._count)
        await asyncio.sleep(self._delay)
        if number in self._fail:
            raise DiscordAPIError(500, "boom")
        assert index <= len(self.messages), "messages are created in order"
        self.shows.append((asyncio.get_running_loop().time(), index, text))
        if index == len(self.messages):
            self.messages.append(text)
        else:
            self.messages[index] = text

    async def remove(self, index: int) -> None:
        assert index == len(self.messages) - 1 > 0, "only the last, never the first"
        self.messages.pop()


async def stream(reply: StreamedReply, deltas: list[str], pause: float) -> None:
    for delta in deltas:
        reply.append(delta)
        await asyncio.sleep(pause)


async def test_edits_are_rate_limited_and_coalesced() -> None:
    slots = RecordingSlots()
    deltas = [f"w{i} " for i in range(100)]
    loop = asyncio.get_running_loop()
    async with StreamedReply(slots, interval=0.1) as reply:
        started = loop.time()
        await stream(reply, deltas, 0.005)  # 0.5 s of writing, longer on a busy machine
        writing = loop.time() - started
        await reply.finish("".join(deltas))
    times = [at for at, _, _ in slots.shows]
    # one edit per interval of the writing as it took, plus the first and the final one
    assert 3 <= len(times) <= writing / 0.1 + 2, "about one edit per interval"
    assert len(times) <= len(deltas) / 5, "coalesced, not one edit per delta"
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.095
    assert all(text.endswith(CURSOR) for _, _, text in slots.shows[:-1])
    assert slots.messages == ["".join(deltas).strip()]


async def test_a_slow_edit_never_loses_text() -> None:
    slots = RecordingSlots(delay=0.15)  # slower than the deltas (a 429 being waited out)
    deltas = [f"d{i} " for i in range(40)]
    async with StreamedReply(slots, interval=0.0) as reply:
        await stream(reply, deltas, 0.005)
        await reply.finish("".join(deltas))
    assert len(slots.shows) <= 4, "what came during an edit went out together"
    assert slots.messages == ["".join(deltas).strip()]


async def test_the_final_text_replaces_the_partial_one() -> None:
    slots = RecordingSlots()
    async with StreamedReply(slots, interval=0.0) as reply:
        reply.append("Half a thou")
        await asyncio.sleep(0.05)
        await reply.finish("Sorry, I could not finish that. Send /retry.")
    assert slots.shows[0][2] == "Half a thou" + CURSOR
    assert slots.messages == ["Sorry, I could not finish that. Send /retry."]


async def test_a_reply_without_deltas_is_shown_once() -> None:
    slots = RecordingSlots()
    async with StreamedReply(slots, interval=1.0) as reply:
        await reply.finish("Done.")
    assert [text for _, _, text in slots.shows] == ["Done."]


async def test_an_empty_reply_shows_a_placeholder() -> None:
    slots = RecordingSlots()
    async with StreamedReply(slots) as reply:
        await reply.finish("   ")
    assert slots.messages == [EMPTY_REPLY]


async def test_a_long_reply_grows_into_follow_up_messages() -> None:
    slots = RecordingSlots()
    text = " ".join(f"word{i}" for i in range(900))  # about 6,000 characters
    async with StreamedReply(slots, interval=0.01) as reply:
        await stream(reply, [text[i : i + 300] for i in range(0, len(text), 300)], 0.01)
        await reply.finish(text)
    assert len(slots.messages) == 4
    assert all(len(m) <= 2000 for m in slots.messages)
    assert " ".join(slots.messages).split() == text.split()


async def test_a_failed_preview_is_superseded() -> None:
    slots = RecordingSlots(fail={0})
    async with StreamedReply(slots, interval=0.0) as reply:
        reply.append("first")
        await asyncio.sleep(0.05)
        await reply.finish("first and more")
    assert slots.messages == ["first and more"]


async def test_a_failed_final_show_is_raised() -> None:
    slots = RecordingSlots(fail={0})
    async with StreamedReply(slots) as reply:
        with pytest.raises(DiscordAPIError):
            await reply.finish("never shown")


async def test_a_short_final_text_removes_the_extra_preview_messages() -> None:
    slots = RecordingSlots()
    partial = " ".join(f"word{i}" for i in range(500))  # over 3,000 characters
    async with StreamedReply(slots, interval=0.0) as reply:
        reply.append(partial)
        await asyncio.sleep(0.05)
        assert len(slots.messages) == 2
        await reply.finish("The persona failed; send /retry.")
    assert slots.messages == ["The persona failed; send /retry."]
