"""The one place that guards every backend: timeouts, retries, fallback.

Backends only produce text; :class:`ReplyGuard` decides how long to wait for it, when
to try again and which backend to ask next. The rules:

* the first delta must come within ``first_delta_timeout`` seconds, and each later one
  within the same time after the previous (a stream that stalls is a failure); the
  whole reply within ``total_timeout``;
* a transient failure (:attr:`BackendError.transient`, timeouts included) before any
  text was produced is retried up to ``retries`` times with exponential backoff;
* when a backend gives up before producing text, the next one of the persona's
  ``fallback`` list answers;
* once text has been streamed, a failure is final (switching voices mid-sentence
  would be worse than an honest error); the engine tells the user and keeps the turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from bot.backends.base import Backend
from bot.errors import BackendError, BackendTimeout, BackendUnavailable
from bot.messages import Turn
from bot.personas import Persona
from bot.store.base import BackendState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    first_delta_timeout: float = 30.0
    total_timeout: float = 120.0
    retries: int = 1
    retry_backoff: float = 0.5


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

    @property
    def backends(self) -> Mapping[str, Backend]:
        return self._backends

    def chain(self, persona: Persona) -> list[Backend]:
        """The backends to try for a persona, in order; unknown names are skipped."""
        names = dict.fromkeys([persona.backend, *persona.fallback])
        return [self._backends[name] for name in names if name in self._backends]

    async def stream(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        """Yield the reply's deltas; raise BackendError when every backend failed."""
        chain = self.chain(persona)
        if not chain:
            raise BackendUnavailable(f"no configured backend for persona {persona.id!r}")
        failure: BackendError | None = None
        for backend in chain:
            for attempt in range(self._policy.retries + 1):
                if attempt:
                    await self._backoff(attempt)
                produced = False
                watch = _Watchdog(self._policy.first_delta_timeout, self._policy.total_timeout)
                try:
                    # Inlined rather than a nested generator: every word passes here.
                    source = backend.reply(persona, window, message, state)
                    async with aclosing(source):  # type: ignore[type-var]
                        while True:
                            try:
                                watch.start_wait()
                                delta = await anext(source)
                            except StopAsyncIteration:
                                return
                            except asyncio.CancelledError as exc:
                                if watch.fired and watch.uncancel() == 0:
                                    raise BackendTimeout(f"{backend.name}: too slow") from exc
                                raise
                            except BackendError:
                                raise
                            except Exception as exc:  # a backend bug must not stop the engine
                                log.exception("backend %s raised unexpectedly", backend.name)
                                raise BackendError(f"{backend.name}: {type(exc).__name__}") from exc
                            finally:
                                watch.end_wait()
                            if delta:
                                produced = True
                                yield delta
                except BackendError as exc:
                    if produced:
                        raise
                    failure = exc
                    log.warning(
                        "backend %s failed (attempt %d): %s", backend.name, attempt + 1, exc
                    )
                    if not exc.transient:
                        break
                finally:
                    watch.close()
        assert failure is not None
        raise failure

    async def _backoff(self, attempt: int) -> None:
        delay = self._policy.retry_backoff * 2 ** (attempt - 1)
        if delay > 0:
            await self._sleep(delay)  # type: ignore[misc]


class _Watchdog:
    """Cancels the current task when the backend keeps it waiting too long.

    ``asyncio.timeout`` around every delta would cost a timer per word; this keeps one
    timer per stream and re-arms it only when it fires. It is armed only while the
    task awaits the backend, so a slow consumer (an adapter waiting out a platform's
    rate limit between deltas) is never cancelled by it.
    """

    def __init__(self, idle: float, total: float):
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._idle = idle
        self._deadline = self._loop.time() + total
        self._waiting_since: float | None = None
        self.fired = False
        self._handle = self._loop.call_at(
            min(self._loop.time() + idle, self._deadline), self._check
        )

    def start_wait(self) -> None:
        now = self._loop.time()
        if now >= self._deadline:
            raise BackendTimeout("the reply took longer than the total timeout")
        self._waiting_since = now

    def end_wait(self) -> None:
        self._waiting_since = None

    def uncancel(self) -> int:
        return self._task.uncancel()

    def _check(self) -> None:
        now = self._loop.time()
        if self._waiting_since is None:
            due = min(now + self._idle, self._deadline)
        else:
            due = min(self._waiting_since + self._idle, self._deadline)
            if now >= due:
                self.fired = True
                self._task.cancel()
                return
        self._handle = self._loop.call_at(due, self._check)

    def close(self) -> None:
        self._handle.cancel()
