"""The one place that guards every backend: timeouts, retries, circuit breakers, fallback.

Backends only produce text; :class:`ReplyGuard` decides how long to wait for it, when
to try again and which backend to ask next. The rules:

* the first delta must come within ``first_delta_timeout`` seconds, and each later one
  within the same time after the previous (a stream that stalls is a failure); the
  whole reply within ``total_timeout``;
* a transient failure (:attr:`BackendError.transient`, timeouts included) before any
  text was produced is retried up to ``retries`` times with exponential backoff. This is
  the only retry: backend clients are built not to retry themselves (the OpenAI SDK
  gets ``max_retries=0``), so one slow server never costs retries times retries. A
  server's ``Retry-After`` is not waited out: the next backend answers instead;
* each backend has a :class:`CircuitBreaker`: after ``breaker_failures`` transient
  failures in a row it is skipped for ``breaker_cooldown`` seconds, then one call probes
  it (half-open) and its outcome closes or re-opens the circuit;
* when a backend gives up (or its circuit is open) before producing text, the next one
  answers: the persona's ``fallback`` list, then ``offline`` when it is configured;
* once text has been streamed, a failure is final (switching voices mid-sentence
  would be worse than an honest error); the engine tells the user and keeps the turn.

:class:`ReplyOutcome` tells the caller which backend answered (a fallback or not) and
what the reply cost, when the backend reports it (:class:`MeteredStream`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from bot.backends.base import Backend, MeteredStream, ReplyContext, TokenUsage
from bot.backoff import Backoff
from bot.errors import BackendError, BackendTimeout, BackendUnavailable
from bot.messages import Turn
from bot.personas import Persona
from bot.store.base import BackendState

log = logging.getLogger(__name__)

#: The backend every chain ends with, when it is configured: it needs no network.
LAST_RESORT = "offline"

CircuitState = Literal["closed", "open", "half-open"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    first_delta_timeout: float = 30.0
    total_timeout: float = 120.0
    retries: int = 1
    retry_backoff: float = 0.5
    #: Transient failures in a row that open a backend's circuit; 0 never opens it.
    breaker_failures: int = 5
    #: Seconds an open circuit waits before one call may probe the backend again.
    breaker_cooldown: float = 30.0


@dataclass(slots=True)
class ReplyOutcome:
    """What :meth:`ReplyGuard.stream` found out, filled in as the reply streams."""

    #: The backend whose text was streamed (None until one produced text).
    backend: str | None = None
    #: Whether that backend is not the persona's own (a fallback answered).
    fallback: bool = False
    #: What the reply cost, when its backend reports it.
    usage: TokenUsage | None = None


class CircuitBreaker:
    """One backend's circuit.

    *closed*: calls go through, and ``failures`` transient failures in a row open it.
    *open*: calls are refused until ``cooldown`` seconds have passed. *half-open*: one
    call (the probe) goes through; its success closes the circuit, its failure opens it
    again for another cool-down. Every call :meth:`allow` lets through must end in
    :meth:`success`, :meth:`failure` or :meth:`release` (no verdict).
    """

    def __init__(self, name: str, failures: int, cooldown: float, clock: Callable[[], float]):
        self.name = name
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go through now (a half-open circuit lets one through)."""
        if self._opened_at is None:
            return True
        if self._probing or self._clock() - self._opened_at < self._cooldown:
            return False
        self._probing = True
        log.info("backend %s: probing after %.0f s", self.name, self._cooldown)
        return True

    def success(self) -> None:
        if self._opened_at is not None:
            log.warning("backend %s answers again: circuit closed", self.name)
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or (self._threshold and self._failures >= self._threshold):
            if not self._probing:
                log.warning(
                    "backend %s failed %d times in a row: skipped for %.0f s",
                    self.name,
                    self._failures,
                    self._cooldown,
                )
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """The call ended with no verdict on the backend (the caller went away, or the
        request itself was wrong): a half-open circuit lets the next call probe."""
        self._probing = False


class ReplyGuard:
    """Streams a persona's reply through its backend chain under one policy."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        policy: GuardPolicy,
        *,
        sleep: Callable[[float], object] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._backends = dict(backends)
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._breakers = {
            name: CircuitBreaker(name, policy.breaker_failures, policy.breaker_cooldown, clock)
            for name in self._backends
        }
        self._takes_context = frozenset(
            name for name, backend in self._backends.items() if _takes_context(backend)
        )

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    @property
    def policy(self) -> GuardPolicy:
        return self._policy

    def circuit(self, name: str) -> CircuitState:
        """The state of a backend's circuit (``closed`` for an unknown name)."""
        breaker = self._breakers.get(name)
        return breaker.state if breaker is not None else "closed"

    def chain(self, persona: Persona) -> list[Backend]:
        """The backends to try for a persona, in order: its own, its fallbacks, then
        offline; names that are not configured are skipped."""
        names = dict.fromkeys([persona.backend, *persona.fallback, LAST_RESORT])
        return [self._backends[name] for name in names if name in self._backends]

    async def stream(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
        context: ReplyContext | None = None,
        outcome: ReplyOutcome | None = None,
    ) -> AsyncIterator[str]:
        """Yield the reply's deltas; raise BackendError when every backend failed.
        ``outcome``, when given, is filled in as the reply streams."""
        chain = self.chain(persona)
        if not chain:
            raise BackendUnavailable(f"no configured backend for persona {persona.id!r}")
        # Backends written before summaries take four arguments: pass these only when set.
        extra: dict[str, Any] = {"summary": summary} if summary else {}
        with_context = extra if context is None else {**extra, "context": context}
        failure: BackendError | None = None
        for backend in chain:
            breaker = self._breakers[backend.name]
            for attempt in range(self._policy.retries + 1):
                if attempt:
                    await self._backoff(attempt)
                if not breaker.allow():
                    failure = failure or BackendUnavailable(f"{backend.name}: circuit open")
                    break
                fallback = backend.name != persona.backend
                call = _Attempt(backend.name, breaker, self._policy, outcome, fallback=fallback)
                try:
                    # Inlined rather than a nested generator: every word passes here.
                    kwargs = with_context if backend.name in self._takes_context else extra
                    source = backend.reply(persona, window, message, state, **kwargs)
                    try:  # (as contextlib.aclosing, without its object and two awaits)
                        while True:
                            watch = call.watch
                            try:
                                watch.start_wait()
                                if watch.armed:
                                    delta = await anext(source)
                                else:  # no timer until the backend really keeps us waiting
                                    delta = await _arm_on_suspend(anext(source), watch)
                            except StopAsyncIteration:
                                call.succeeded(source)
                                return
                            except asyncio.CancelledError as exc:
                                call.raise_if_timed_out(exc)
                                raise
                            except BackendError:
                                raise
                            except Exception as exc:  # a backend bug must not stop the engine
                                raise call.bug(exc) from exc
                            finally:
                                watch.end_wait()
                            if delta:
                                if not call.produced:
                                    call.first_text()
                                yield delta
                    finally:
                        await source.aclose()  # type: ignore[attr-defined]
                except BackendError as exc:
                    call.failed(exc)
                    if call.produced:
                        raise
                    failure = exc
                    log.warning(
                        "backend %s failed (attempt %d): %s", backend.name, attempt + 1, exc
                    )
                    if not exc.transient:
                        break
                finally:
                    call.close()
        assert failure is not None
        raise failure

    async def _backoff(self, attempt: int) -> None:
        delay = Backoff(self._policy.retry_backoff).delay(attempt)
        if delay > 0:
            await self._sleep(delay)  # type: ignore[misc]


def _takes_context(backend: Backend) -> bool:
    """Whether ``backend.reply`` names a ``context`` parameter (backends written before
    it do not; one that only passes ``**kwargs`` on may wrap one of those)."""
    try:
        parameters = inspect.signature(backend.reply).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters


class _Watchdog:
    """Cancels the current task when the backend keeps it waiting too long.

    ``asyncio.timeout`` around every delta would cost a timer per word; this keeps one
    timer per stream and re-arms it only when it fires. It is armed only while the
    task awaits the backend, so a slow consumer (an adapter waiting out a platform's
    rate limit between deltas) is never cancelled by it. And it is armed only once the
    backend first really keeps the task waiting (:func:`_arm_on_suspend`): a reply
    that is ready at once (the offline brain's) costs no timer at all, and a timer
    could not have interrupted it anyway, as the task never let the loop run.
    """

    __slots__ = ("_deadline", "_handle", "_idle", "_loop", "_task", "_waiting_since", "fired")

    def __init__(self, idle: float, total: float):
        self._loop = asyncio.get_running_loop()
        self._idle = idle
        self._deadline = self._loop.time() + total
        self._waiting_since: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def arm(self) -> None:
        """Start the timer: the task now waits on the backend (see :meth:`start_wait`)."""
        task = asyncio.current_task()
        assert task is not None
        assert self._waiting_since is not None
        self._task = task
        due = min(self._waiting_since + self._idle, self._deadline)
        self._handle = self._loop.call_at(due, self._check)

    def start_wait(self) -> None:
        now = self._loop.time()
        if now >= self._deadline:
            raise BackendTimeout("the reply took longer than the total timeout")
        self._waiting_since = now

    def end_wait(self) -> None:
        self._waiting_since = None

    def uncancel(self) -> int:
        assert self._task is not None
        return self._task.uncancel()

    def _check(self) -> None:
        now = self._loop.time()
        if self._waiting_since is None:
            due = min(now + self._idle, self._deadline)
        else:
            due = min(self._waiting_since + self._idle, self._deadline)
            if now >= due:
                assert self._task is not None
                self.fired = True
                self._task.cancel()
                return
        self._handle = self._loop.call_at(due, self._check)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@types.coroutine
def _arm_on_suspend(step: Awaitable[T], watch: _Watchdog) -> Generator[Any, Any, T]:
    """Await ``step`` (the backend's next delta), arming ``watch`` when, and only when,
    it suspends the task: the rest is delegated as ``await`` (``yield from``) would."""
    inner = step.__await__()
    try:
        pending = inner.send(None)
    except StopIteration as ready:  # ready at once: the loop never ran, no timer needed
        return cast(T, ready.value)
    watch.arm()
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # a cancellation, the watchdog's included: pass it in
            try:
                pending = inner.throw(exc)
            except StopIteration as done:
                return cast(T, done.value)
        else:
            try:
                pending = inner.send(sent)
            except StopIteration as done:
                return cast(T, done.value)


class _Attempt:
    """One call of one backend: the watchdog on its waits, whether it produced text,
    and the one verdict it leaves on the backend's circuit: success, failure, or none
    (:meth:`close` releases a call that ended without a verdict)."""

    __slots__ = ("_breaker", "_fallback", "_outcome", "_settled", "name", "produced", "watch")

    def __init__(
        self,
        name: str,
        breaker: CircuitBreaker,
        policy: GuardPolicy,
        outcome: ReplyOutcome | None,
        *,
        fallback: bool,
    ):
        self.name = name
        self.watch = _Watchdog(policy.first_delta_timeout, policy.total_timeout)
        #: Whether text was streamed: a failure after it is final (no other voice).
        self.produced = False
        self._breaker = breaker
        self._outcome = outcome
        self._fallback = fallback
        self._settled = False

    def first_text(self) -> None:
        """The first delta with text is about to be streamed."""
        self.produced = True
        if self._outcome is not None:
            self._outcome.backend = self.name
            self._outcome.fallback = self._fallback

    def succeeded(self, source: AsyncIterator[str]) -> None:
        """The reply ended: the backend answers, and its cost is known when it says."""
        self._settled = True
        self._breaker.success()
        if self._outcome is not None and isinstance(source, MeteredStream):
            self._outcome.usage = source.usage

    def failed(self, exc: BackendError) -> None:
        self._settled = True
        if exc.transient:
            self._breaker.failure()
        else:
            self._breaker.release()  # the server answered: it is not down

    def raise_if_timed_out(self, exc: asyncio.CancelledError) -> None:
        """Turn the watchdog's own cancellation into a timeout (any other cancellation
        goes on: the caller's)."""
        if self.watch.fired and self.watch.uncancel() == 0:
            raise BackendTimeout(f"{self.name}: too slow") from exc

    def bug(self, exc: Exception) -> BackendError:
        log.exception("backend %s raised unexpectedly", self.name)
        return BackendError(f"{self.name}: {type(exc).__name__}")

    def close(self) -> None:
        self.watch.close()
        if not self._settled:  # cancelled, or the consumer went away
            self._breaker.release()
