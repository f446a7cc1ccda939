"""``coalesced``: the first piece at once, then one joined piece per burst; nothing lost,
nothing reordered, the source closed with it. Time is simulated: a piece "arrives" at
its time, a read waits for it (the clock moves on), a pause moves the clock too."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from bot.coalesce import coalesced


class Model:
    """A source whose pieces arrive at given times, on a clock of its own."""

    def __init__(self, arrivals: list[tuple[float, str]]) -> None:
        self.arrivals = arrivals
        self.now = 0.0
        self.pauses: list[float] = []
        self.closed = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    async def pieces(self) -> AsyncGenerator[str, None]:
        try:
            for at, piece in self.arrivals:
                self.now = max(self.now, at)  # the read waits until the piece is there
                yield piece
        finally:
            self.closed = True

    def stream(self, interval: float = 0.2) -> AsyncGenerator[str, None]:
        return coalesced(self.pieces(), interval=interval, clock=self.clock, sleep=self.sleep)


async def collect(stream: AsyncGenerator[str, None]) -> list[str]:
    return [piece async for piece in stream]


def words(count: int, every: float) -> list[tuple[float, str]]:
    return [(n * every, f"w{n} ") for n in range(count)]


async def test_a_word_every_20ms_comes_as_one_piece_per_pause() -> None:
    model = Model(words(50, 0.02))  # one second of text

    got = await collect(model.stream(interval=0.2))

    assert "".join(got) == "".join(piece for _, piece in model.arrivals), "all, in order"
    assert got[0] == "w0 ", "the first words pass at once"
    assert len(got) <= 7, got  # 50 reads would have been 50 pieces
    assert model.closed


async def test_a_reply_sent_all_at_once_becomes_two_pieces() -> None:
    model = Model(words(50, 0.0))

    got = await collect(model.stream())

    assert got == ["w0 ", "".join(piece for _, piece in model.arrivals[1:])]
    assert model.pauses == [0.2]


async def test_slow_words_pass_one_by_one() -> None:
    model = Model(words(5, 1.0))  # slower than the pause: nothing to join

    got = await collect(model.stream(interval=0.2))

    assert got == [piece for _, piece in model.arrivals]


async def test_empty_pieces_are_dropped_and_an_empty_source_gives_nothing() -> None:
    assert await collect(Model([(0.0, ""), (0.0, "a"), (0.5, ""), (0.5, "b")]).stream()) == [
        "a",
        "b",
    ]
    assert await collect(Model([(0.0, ""), (0.1, "")]).stream()) == []
    assert await collect(Model([]).stream()) == []


async def test_closing_early_closes_the_source() -> None:
    model = Model(words(50, 0.02))
    stream = model.stream()

    assert await anext(stream) == "w0 "
    await stream.aclose()

    assert model.closed


async def test_an_error_of_the_source_comes_through_after_what_was_passed() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        yield "partial "
        raise RuntimeError("the model went away")

    got: list[str] = []

    async def drain() -> None:
        async for piece in coalesced(failing(), interval=0.0):
            got.append(piece)

    with pytest.raises(RuntimeError, match="went away"):
        await drain()

    assert got == ["partial "]
