"""An engine on a SQLite file, in a process of its own, for ``test_crash_mid_reply.py`` to
kill (SIGKILL: no cleanup runs, as when a machine's process is killed for memory).

``python crash_child.py reply DB USERS``
    Each of USERS guests sends one message to a persona whose backend streams slowly
    and never finishes; ``MID <tag>`` is printed once that user's reply has streamed a
    few deltas (their turn is stored by then), and ``ALL MID`` once every user's has.
``python crash_child.py burst DB USERS ROUND``
    USERS guests chat as fast as they can with an echoing backend: ``SEND <token>``
    before each message, ``ACK <token>`` after its reply was delivered as complete.

Either way the process then waits to be killed, and exits by itself (status 3) after
``LIFETIME`` seconds if nobody does. Run with ``PYTHONPATH`` holding the repository.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.messages import Incoming, ReplyDone, ReplyKind, TextDelta, Turn
from bot.personas import Persona, PersonaLibrary
from bot.store.base import BackendState
from bot.store.sqlite import SqliteStore
from tests.support.fakes import WindowEcho, make_persona

LIFETIME = 60.0
LEASE_SECONDS = 6.0
#: Deltas a reply streams before its user is reported mid-reply.
DELTAS_BEFORE_MARK = 3
#: What every delta of the never-ending reply starts with: no stored turn may hold it.
PARTIAL = "PARTIAL"
PATIENT = GuardPolicy(first_delta_timeout=30.0, total_timeout=120.0, retries=0)


class EndlessStream:
    """A backend that streams ``PARTIAL`` words, one every ``pause`` seconds, and does
    not finish within the child's lifetime."""

    def __init__(self, name: str = "endless", pause: float = 0.02) -> None:
        self.name = name
        self._pause = pause

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        for n in range(int(LIFETIME / self._pause) + 1):
            yield f"{PARTIAL}{n} "
            await asyncio.sleep(self._pause)

    async def aclose(self) -> None:
        pass


def dm(user: str, text: str) -> Incoming:
    return Incoming("telegram", user, user.upper(), user, True, text)


def engine_on(store: SqliteStore, backend: Backend) -> Engine:
    persona = make_persona("ada", "Professor Ada", backend=backend.name)
    return build_engine(
        store,
        PersonaLibrary([persona]),
        ReplyGuard({backend.name: backend}, PATIENT),
        # A killed process's conversations are free again once its leases expire: short
        # here, so that the next start's /retry waits seconds, not half a minute.
        settings=EngineSettings(window_max_turns=8, summary=False, lease_seconds=LEASE_SECONDS),
        rate_limit=RateLimitSettings(per_minute=1e9, burst=10**9),
    )


def say(line: str) -> None:
    print(line, flush=True)


async def mid_reply(engine: Engine, users: int) -> None:
    reached = asyncio.Semaphore(0)

    async def one(tag: str) -> None:
        streamed = 0
        async for event in engine.handle(dm(tag, f"tok:{tag}:0 are you there?")):
            if isinstance(event, TextDelta):
                streamed += 1
                if streamed == DELTAS_BEFORE_MARK:
                    say(f"MID {tag}")
                    reached.release()

    tasks = [asyncio.create_task(one(f"u{n}")) for n in range(users)]
    for _ in range(users):
        await reached.acquire()
    say("ALL MID")
    await asyncio.gather(*tasks)


async def burst(engine: Engine, users: int, round_: int) -> None:
    async def one(tag: str) -> None:
        for n in itertools.count():
            token = f"tok:{tag}:r{round_}n{n}"
            say(f"SEND {token}")
            done: ReplyDone | None = None
            async for event in engine.handle(dm(tag, f"{token} hello again")):
                if isinstance(event, ReplyDone):
                    done = event
            if done is not None and done.kind is ReplyKind.CHAT:
                say(f"ACK {token}")

    await asyncio.gather(*(one(f"u{n}") for n in range(users)))


async def main(mode: str, path: Path, users: int, round_: int) -> None:
    async with SqliteStore(path) as store:
        if mode == "reply":
            await mid_reply(engine_on(store, EndlessStream()), users)
        else:
            await burst(engine_on(store, WindowEcho("echo", chunk=40)), users, round_)
        await asyncio.sleep(LIFETIME)


if __name__ == "__main__":
    mode, db, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    round_ = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    try:
        asyncio.run(asyncio.wait_for(main(mode, db, count, round_), LIFETIME))
    except TimeoutError:
        os._exit(3)  # nobody killed us: the test has gone away
