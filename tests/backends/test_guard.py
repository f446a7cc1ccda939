"""The guard: the chain ending at offline, circuit breakers, what it reports, the note."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest

from bot.backends.base import MeteredStream, TokenUsage
from bot.backends.guard import CircuitBreaker, GuardPolicy, ReplyGuard, ReplyOutcome
from bot.backends.offline import OfflineBackend
from bot.config import EngineSettings
from bot.errors import BackendError, BackendTimeout, BackendUnavailable
from bot.messages import ReplyKind, Turn
from bot.personas import Persona
from bot.store.memory import MemoryStore
from tests.support.backend_harness import build_engine, card
from tests.support.clocks import Clock
from tests.support.engine import dm, key, reply, send
from tests.support.fakes import ScriptedBackend, WindowEcho

MESSAGE = Turn(1, "user", "hi", "Alice", 0.0)
BREAKER = GuardPolicy(
    first_delta_timeout=1, total_timeout=2, retries=0, breaker_failures=3, breaker_cooldown=30
)


def down(name: str = "primary") -> ScriptedBackend:
    return ScriptedBackend(name, [BackendUnavailable("down")] * 100)


async def text_of(guard: ReplyGuard, persona: Persona, **kwargs: Any) -> str:
    return "".join([d async for d in guard.stream(persona, [], MESSAGE, {}, **kwargs)])


# -- the chain --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "backend", "fallback", "chain"),
    [
        pytest.param(
            ("primary", "spare", "offline"),
            "primary",
            ("spare",),
            ["primary", "spare", "offline"],
            id="fallbacks-then-offline",
        ),
        pytest.param(
            ("primary", "offline"), "primary", (), ["primary", "offline"], id="offline-always-last"
        ),
        pytest.param(
            ("primary", "spare"), "primary", ("spare",), ["primary", "spare"], id="no-offline"
        ),
        pytest.param(
            ("spare", "offline"),
            "primary",
            ("nowhere", "spare"),
            ["spare", "offline"],
            id="unconfigured-skipped",
        ),
        pytest.param(
            ("primary", "offline"),
            "primary",
            ("offline", "primary"),
            ["primary", "offline"],
            id="no-repeats",
        ),
    ],
)
def test_the_chain_is_the_persona_its_fallbacks_then_offline(
    configured: tuple[str, ...], backend: str, fallback: tuple[str, ...], chain: list[str]
) -> None:
    guard = ReplyGuard({n: WindowEcho(n) for n in configured}, GuardPolicy())
    persona = card(backend=backend, fallback=fallback)
    assert [b.name for b in guard.chain(persona)] == chain


# -- circuit breakers -------------------------------------------------------------------


async def test_the_circuit_opens_after_consecutive_failures(store: MemoryStore) -> None:
    primary, spare, clock = (
        down(),
        ScriptedBackend("spare", [], default="spare says"),
        Clock(1000.0),
    )
    persona = card(backend="primary", fallback=("spare",))
    engine = build_engine(store, [primary, spare], [persona], policy=BREAKER, clock=clock)
    for _ in range(3):
        assert (await reply(engine, dm("alice", "hi"))).text == "spare says"
    assert primary.calls == 3 and engine.guard.circuit("primary") == "open"
    for _ in range(5):  # skipped now: no more waiting on a dead backend
        assert (await reply(engine, dm("alice", "hi"))).text == "spare says"
    assert primary.calls == 3
    clock.now += 29
    await reply(engine, dm("alice", "hi"))
    assert primary.calls == 3 and engine.guard.circuit("primary") == "open"


@pytest.mark.parametrize(
    ("probe", "circuit", "answer"),
    [
        pytest.param("back again", "closed", "back again", id="probe-succeeds"),
        pytest.param(BackendUnavailable("still down"), "open", "spare says", id="probe-fails"),
    ],
)
async def test_after_the_cool_down_one_call_probes(
    probe: str | BaseException, circuit: str, answer: str
) -> None:
    primary = ScriptedBackend("primary", [BackendUnavailable("down")] * 3 + [probe])
    spare, clock = ScriptedBackend("spare", [], default="spare says"), Clock(1000.0)
    guard = ReplyGuard({"primary": primary, "spare": spare}, BREAKER, clock=clock)
    persona = card(backend="primary", fallback=("spare",))
    for _ in range(3):
        await text_of(guard, persona)
    clock.now += 30
    assert guard.circuit("primary") == "half-open"
    assert (await text_of(guard, persona)).strip() == answer
    assert primary.calls == 4 and guard.circuit("primary") == circuit
    await text_of(guard, persona)
    assert primary.calls == (5 if circuit == "closed" else 4)


class Gate:
    """A backend down for its first ``failures`` calls; then its replies wait for
    ``opened``."""

    name = "primary"

    def __init__(self, failures: int) -> None:
        self.opened = asyncio.Event()
        self.calls = 0
        self._failures = failures

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: dict[str, Any]
    ) -> AsyncIterator[str]:
        self.calls += 1
        if self.calls <= self._failures:
            raise BackendUnavailable("down")
        await self.opened.wait()
        yield "probed"

    async def aclose(self) -> None:
        pass


async def test_half_open_lets_one_probe_through_at_a_time() -> None:
    gate, spare, clock = (
        Gate(failures=3),
        ScriptedBackend("spare", [], default="spare"),
        Clock(1000.0),
    )
    guard = ReplyGuard({"primary": gate, "spare": spare}, BREAKER, clock=clock)
    persona = card(backend="primary", fallback=("spare",))
    for _ in range(3):
        await text_of(guard, persona)
    clock.now += 30
    probe = asyncio.create_task(text_of(guard, persona))
    await asyncio.sleep(0.01)
    assert gate.calls == 4
    others = await asyncio.gather(*(text_of(guard, persona) for _ in range(3)))
    assert [o.strip() for o in others] == ["spare"] * 3 and gate.calls == 4
    gate.opened.set()
    assert await probe == "probed" and guard.circuit("primary") == "closed"


async def test_a_probe_whose_caller_went_away_lets_the_next_call_probe() -> None:
    clock = Clock(1000.0)
    breaker = CircuitBreaker("x", failures=1, cooldown=5, clock=clock)
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.release()
    assert breaker.state == "half-open" and breaker.allow()


async def test_a_probe_left_mid_stream_is_released() -> None:
    primary = ScriptedBackend("primary", [BackendUnavailable("down")], default="one two three")
    clock = Clock(1000.0)
    policy = GuardPolicy(retries=0, breaker_failures=1, breaker_cooldown=5)
    guard = ReplyGuard({"primary": primary}, policy, clock=clock)
    persona = card(backend="primary")
    with pytest.raises(BackendUnavailable):
        await text_of(guard, persona)
    clock.now += 5
    stream = guard.stream(persona, [], MESSAGE, {})
    assert await anext(stream) == "one "
    await stream.aclose()  # the adapter went away
    assert guard.circuit("primary") == "half-open"
    assert (await text_of(guard, persona)).strip() == "one two three"
    assert guard.circuit("primary") == "closed"


async def test_errors_that_are_not_transient_do_not_open_the_circuit() -> None:
    primary = ScriptedBackend("primary", [BackendError("bad request")] * 10)
    guard = ReplyGuard({"primary": primary, "offline": OfflineBackend(seed=1)}, BREAKER)
    for _ in range(10):
        assert await text_of(guard, card(backend="primary"))
    assert primary.calls == 10 and guard.circuit("primary") == "closed"


async def test_a_lone_backend_with_an_open_circuit_is_a_clear_failure(store: MemoryStore) -> None:
    primary = down()
    engine = build_engine(store, [primary], [card(backend="primary")], policy=BREAKER)
    for _ in range(4):
        done = await reply(engine, dm("alice", "hi"))
        assert done.kind is ReplyKind.ERROR and "/retry" in done.text
    assert primary.calls == 3
    assert [t.text for t in (await store.load_window(key("alice"), 10)).turns] == ["hi"] * 4
    with pytest.raises(BackendUnavailable, match="circuit open"):
        await text_of(engine.guard, card(backend="primary"))


# -- what the guard reports and passes on -------------------------------------------------


class Metered:
    name = "metered"

    def __init__(self) -> None:
        self.summaries: list[str] = []

    def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: dict[str, Any],
        *,
        summary: str = "",
    ) -> MeteredStream:
        self.summaries.append(summary)

        async def produce(stream: MeteredStream) -> AsyncGenerator[str, None]:
            yield "counted"
            stream.usage = TokenUsage(12, 4)

        return MeteredStream(produce)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    ("persona", "backend", "fallback"),
    [
        pytest.param(card(backend="metered"), "metered", False, id="own"),
        pytest.param(card(backend="gone", fallback=("metered",)), "metered", True, id="fallback"),
    ],
)
async def test_the_outcome_says_who_answered_and_what_it_cost(
    persona: Persona, backend: str, fallback: bool
) -> None:
    gone = ScriptedBackend("gone", [BackendUnavailable("x")] * 5)
    guard = ReplyGuard({"metered": Metered(), "gone": gone}, GuardPolicy(retry_backoff=0))
    outcome = ReplyOutcome()
    assert await text_of(guard, persona, outcome=outcome) == "counted"
    assert outcome == ReplyOutcome(backend, fallback, TokenUsage(12, 4))


async def test_the_summary_is_passed_only_when_there_is_one() -> None:
    metered, plain = Metered(), WindowEcho("plain")  # WindowEcho takes no summary at all
    guard = ReplyGuard({"metered": metered, "plain": plain}, GuardPolicy())
    await text_of(guard, card(backend="metered"), summary="the gist")
    await text_of(guard, card(backend="metered"))
    assert metered.summaries == ["the gist", ""]
    assert await text_of(guard, card(backend="plain"))


@pytest.mark.parametrize(
    ("primary_works", "noted"),
    [
        pytest.param(False, True, id="fallback-answered"),
        pytest.param(True, False, id="own-backend-answered"),
    ],
)
async def test_the_fallback_note_follows_the_reply_and_is_not_stored(
    store: MemoryStore, primary_works: bool, noted: bool
) -> None:
    primary = ScriptedBackend("primary", [] if primary_works else [BackendUnavailable("x")] * 2)
    spare = ScriptedBackend("spare", [], default="spare answer")
    engine = build_engine(
        store,
        [primary, spare],
        [card(backend="primary", fallback=("spare",))],
        settings=EngineSettings(fallback_note=True),
    )
    deltas, done = await send(engine, dm("alice", "hi"))
    assert done.kind is ReplyKind.CHAT and "backup" not in done.text
    assert ("backup answered" in deltas[-1]) is noted
    assert ("backup answered" in done.note) is noted, "front ends that redraw show it too"
    assert done.shown == done.text + done.note
    stored = (await store.load_window(key("alice"), 5)).turns[-1].text
    assert stored == done.text


# -- the watchdog: timeouts, and no timer for a reply that is ready at once ---------------


class Paced:
    """Yields ``words`` with a sleep of ``pauses[i]`` (None: no await at all) before
    word ``i``; notes whether its stream was closed."""

    name = "paced"

    def __init__(self, words: Sequence[str], pauses: Sequence[float | None]):
        self._words = words
        self._pauses = pauses
        self.closed = 0

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        try:
            for word, pause in zip(self._words, self._pauses, strict=True):
                if pause is not None:
                    await asyncio.sleep(pause)
                yield word
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


def count_timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The deadlines of the timers the guard asks the running loop for from now on
    (a backend's own sleeps are not counted)."""
    loop = asyncio.get_running_loop()
    asked: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if type(getattr(callback, "__self__", None)).__module__ == "bot.backends.guard":
            asked.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    return asked


async def test_a_reply_ready_at_once_costs_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy())
    timers = count_timers(monkeypatch)
    for _ in range(3):
        assert await text_of(guard, card(backend="offline"))
    assert timers == []


async def test_a_backend_that_keeps_the_task_waiting_gets_one_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = Paced(["a ", "b ", "c "], [0.001, 0.001, None])
    guard = ReplyGuard({"paced": backend}, GuardPolicy(first_delta_timeout=5, total_timeout=9))
    timers = count_timers(monkeypatch)
    assert await text_of(guard, card(backend="paced")) == "a b c "
    assert len(timers) == 1, "armed at the first wait, then kept: not one per delta"


async def test_a_stall_after_a_ready_first_delta_is_timed_out() -> None:
    backend = Paced(["quick ", "never"], [None, 30])
    guard = ReplyGuard({"paced": backend}, GuardPolicy(first_delta_timeout=0.05, retries=0))
    stream = guard.stream(card(backend="paced"), [], MESSAGE, {})
    assert await anext(stream) == "quick "
    async with asyncio.timeout(10):
        with pytest.raises(BackendTimeout):
            await anext(stream)
    assert backend.closed == 1


async def test_a_trickle_is_cut_at_the_total_timeout() -> None:
    backend = Paced(["w "] * 1000, [None] + [0.02] * 999)
    policy = GuardPolicy(first_delta_timeout=1, total_timeout=0.2, retries=0)
    guard = ReplyGuard({"paced": backend}, policy)
    words: list[str] = []

    async def read() -> None:
        async for delta in guard.stream(card(backend="paced"), [], MESSAGE, {}):
            words.append(delta)

    with pytest.raises(BackendTimeout):
        await read()
    assert 1 < len(words) < 1000


async def test_a_slow_reader_is_not_timed_out_by_a_waiting_backend() -> None:
    backend = Paced(["a ", "b ", "c "], [0.001, 0.001, 0.001])
    guard = ReplyGuard({"paced": backend}, GuardPolicy(first_delta_timeout=0.05, retries=0))
    read = []
    async for delta in guard.stream(card(backend="paced"), [], MESSAGE, {}):
        read.append(delta)
        await asyncio.sleep(0.15)  # the adapter waits out a rate limit: 3x the idle timeout
    assert read == ["a ", "b ", "c "]


async def test_the_callers_cancellation_goes_on_and_closes_the_backend() -> None:
    backend = Paced(["late"], [30])
    guard = ReplyGuard({"paced": backend}, GuardPolicy(first_delta_timeout=20, retries=0))
    started = asyncio.Event()

    async def read() -> None:
        stream = guard.stream(card(backend="paced"), [], MESSAGE, {})
        started.set()
        async for _ in stream:
            pass

    task = asyncio.create_task(read())
    await started.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.closed == 1
    assert guard.circuit("paced") == "closed"
