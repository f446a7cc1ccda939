"""Two workers on one DynamoDB table: what the conversation lease costs and saves.

Scenarios, each on a fresh table of moto's DynamoDB server (serialised, as the tests
run it; **moto is not DynamoDB**: calls, cancelled transactions and waits carry over,
moto's wall times do not, which is why the backend here takes a fixed 0.2 s per reply
and latencies are read against it):

* uncontended: one worker, each account's messages one after another: DynamoDB calls
  per message (the lease rides on the two TransactWriteItems: no call of its own);
* contended, with the lease: two workers (two stores, two engines, as two processes)
  given messages of the same conversations at the same moment: calls per message,
  TransactWriteItems cancelled (conflict rate), lease waits;
* contended, before: the same burst with the store ignoring the lease (the protocol
  before issue 15: a version check only), for the conflict rate it had and how many
  replies did not follow their own message;
* latency added when two workers contend for one conversation: both get a message of
  it at once; the one that waits is answered after the other's reply.

Run: ``.venv/bin/python bench/leases.py`` (``--quick`` for a smoke run; ``--json PATH``
for ``bench/all.py``). Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Figure, add_json_option, emit
from bench.store import moto_server, store_on
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.messages import ConversationKey, Incoming, NewTurn, ReplyDone, Turn, account_owner
from bot.personas import Persona, PersonaLibrary
from bot.store.base import BackendState
from bot.store.dynamo import DynamoStore

REPLY_SECONDS = 0.2
NOTE = "two workers on moto's DynamoDB (serialised): calls and conflicts carry over"


class TimedReply:
    """A backend whose every reply takes ``REPLY_SECONDS``, in four deltas."""

    name = "timed"

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        for word in ("re:", message.text, " ", "ok"):
            await asyncio.sleep(REPLY_SECONDS / 4)
            yield word

    async def aclose(self) -> None:
        pass


class WithoutLeases:
    """The store as it was before the lease: appends under the version check only."""

    def __init__(self, store: DynamoStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append_turns(
        self, key: ConversationKey, turns: Sequence[NewTurn], version: int, now: float, **_: Any
    ) -> tuple[int, tuple[Turn, ...]]:
        return await self._store.append_turns(key, turns, version, now)


def worker(store: Any) -> Engine:
    backend = TimedReply()
    personas = PersonaLibrary([Persona(id="ada", name="Ada", backend=backend.name)])
    guard = ReplyGuard({backend.name: backend}, GuardPolicy(retries=0))
    settings = EngineSettings(summary=False, window_max_turns=20)
    unlimited = RateLimitSettings(per_minute=1e9, burst=10**9)
    return build_engine(store, personas, guard, settings=settings, rate_limit=unlimited)


def web(account_id: str, text: str) -> Incoming:
    return Incoming("web", account_id, "U", account_id, True, text, account_id=account_id)


@dataclass
class Run:
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    async def send(self, engine: Engine, message: Incoming) -> None:
        started = time.perf_counter()
        done = None
        async for event in engine.handle(message):
            if isinstance(event, ReplyDone):
                done = event
        self.latencies.append(time.perf_counter() - started)
        assert done is not None
        self.kinds.append(done.kind)
        self.messages += 1


def totals(stores: Sequence[DynamoStore]) -> dict[str, int]:
    return {
        "calls": sum(s.stats.total_calls for s in stores),
        "transacts": sum(s.stats.calls["TransactWriteItems"] for s in stores),
        "cancelled": sum(s.stats.cancelled_transactions for s in stores),
        "busy": sum(s.stats.lease_busy for s in stores),
        "conflicts": sum(s.stats.version_conflicts for s in stores),
    }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


async def misplaced(store: DynamoStore, accounts: Sequence[str]) -> int:
    """Replies not right after their own user turn, over every conversation."""
    count = 0
    for account_id in accounts:
        key = ConversationKey(account_owner(account_id), "ada", "direct")
        turns = (await store.load_window(key, 500)).turns
        for index, turn in enumerate(turns):
            if turn.role == "assistant":
                asked = turns[index - 1]
                if asked.role != "user" or not turn.text.startswith(f"re:{asked.text} "):
                    count += 1
    return count


async def burst(endpoint: str, accounts: int, rounds: int, *, leases: bool) -> dict[str, Any]:
    async with store_on(endpoint) as first, store_on(endpoint, first.table.name) as second:
        ids = [(await first.create_account(f"u{n}", "h", 1.0)).id for n in range(accounts)]
        wrap = (lambda s: s) if leases else WithoutLeases
        engines = worker(wrap(first)), worker(wrap(second))
        run = Run()
        before = totals((first, second))
        started = time.perf_counter()

        async def sender(side: int, account_id: str) -> None:
            for i in range(rounds):
                await run.send(engines[side], web(account_id, f"w{side}m{i}"))

        await asyncio.gather(*(sender(side, a) for a in ids for side in (0, 1)))
        elapsed = time.perf_counter() - started
        used = delta(totals((first, second)), before)
        return {
            **used,
            "messages": run.messages,
            "answered": run.kinds.count("chat"),
            "misplaced": await misplaced(first, ids),
            "seconds": elapsed,
        }


async def uncontended(endpoint: str, accounts: int, rounds: int) -> dict[str, Any]:
    async with store_on(endpoint) as store:
        ids = [(await store.create_account(f"u{n}", "h", 1.0)).id for n in range(accounts)]
        engine, run = worker(store), Run()
        for account_id in ids:  # first messages (a Query each): not counted
            await run.send(engine, web(account_id, "first"))
        before = totals((store,))
        for i in range(rounds):
            for account_id in ids:
                await run.send(engine, web(account_id, f"m{i}"))
        return {**delta(totals((store,)), before), "messages": rounds * accounts}


async def pairs(endpoint: str, tries: int) -> tuple[list[float], list[float]]:
    """Latency of a message alone, and of both messages when two workers get one each
    of the same conversation at once."""
    alone: list[float] = []
    together: list[float] = []
    async with store_on(endpoint) as first, store_on(endpoint, first.table.name) as second:
        engines = worker(first), worker(second)
        for n in range(tries):
            account_id = (await first.create_account(f"p{n}", "h", 1.0)).id
            run = Run()
            await run.send(engines[0], web(account_id, "warm"))
            await run.send(engines[1], web(account_id, "warm"))
            await run.send(engines[0], web(account_id, "alone"))
            alone.append(run.latencies[-1])
            both = Run()
            await asyncio.gather(
                both.send(engines[0], web(account_id, "a")),
                both.send(engines[1], web(account_id, "b")),
            )
            together.extend(both.latencies)
    return alone, together


def rate(row: dict[str, Any]) -> float:
    return 100 * row["cancelled"] / max(row["transacts"], 1)


async def main(quick: bool) -> list[Figure]:
    accounts, rounds, tries = (4, 3, 5) if quick else (10, 6, 20)
    with moto_server() as endpoint:
        plain = await uncontended(endpoint, accounts, rounds)
        before = await burst(endpoint, accounts, rounds, leases=False)
        after = await burst(endpoint, accounts, rounds, leases=True)
        alone, together = await pairs(endpoint, tries)
    print(NOTE)
    per = plain["calls"] / plain["messages"]
    print(f"uncontended: {per:.2f} DynamoDB calls per message, {plain['cancelled']} cancelled")
    header = "scenario                    messages  calls/msg  TransactWriteItems  cancelled  rate"
    print(header + "   lease waits  answered  replies not after their message")
    for name, row in (("contended, before (no lease)", before), ("contended, lease", after)):
        print(
            f"{name:<28}{row['messages']:>8}  {row['calls'] / row['messages']:>9.2f}"
            f"  {row['transacts']:>18}  {row['cancelled']:>9}  {rate(row):>4.1f}%"
            f"   {row['busy']:>11}  {row['answered']:>8}  {row['misplaced']:>4}"
        )
    waiting = sorted(together)[len(together) // 2 :]  # the slower of each pair
    added = statistics.median(waiting) - statistics.median(alone)
    print(
        f"latency (backend reply {REPLY_SECONDS * 1000:.0f} ms): alone median "
        f"{1000 * statistics.median(alone):.0f} ms; two at once: first "
        f"{1000 * statistics.median(sorted(together)[: len(together) // 2]):.0f} ms, waiting "
        f"{1000 * statistics.median(waiting):.0f} ms (added {1000 * added:.0f} ms)"
    )
    return [
        Figure("leases", "DynamoDB calls per message, uncontended", per, "calls", 3, "lower", NOTE),
        Figure(
            "leases",
            "TransactWriteItems cancelled under contention, with the lease",
            rate(after),
            "%",
            note=NOTE,
        ),
        Figure(
            "leases",
            "TransactWriteItems cancelled under contention, before the lease",
            rate(before),
            "%",
            note=NOTE,
        ),
        Figure(
            "leases",
            "calls per message under contention, with the lease",
            after["calls"] / after["messages"],
            "calls",
            note=NOTE,
        ),
        Figure(
            "leases",
            "latency added to the waiting message of two at once",
            1000 * added,
            "ms",
            note=f"the other's reply takes {REPLY_SECONDS * 1000:.0f} ms",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(asyncio.run(main(arguments.quick)), arguments.json)
