"""DynamoStore benchmark: DynamoDB calls and client CPU per chat message.

Every message goes through the engine, a DynamoStore and the offline backend; the
DynamoDB is moto's server, in a process of its own (the one the tests use, from
``tests/support/moto_server.py``), so ``time.process_time`` here is the client's CPU alone:
engine, store, serialisation, aiobotocore, backend. **moto is not DynamoDB**: it answers
one request at a time and far slower than DynamoDB, so wall times printed here say
nothing about DynamoDB's speed. What carries over is the number of calls (each one a
round trip of a few milliseconds to DynamoDB, and a request to pay for) and the CPU each
message costs the bot. Calls are counted through botocore's own events
(``before-call.dynamodb``: one per API call, botocore's retries not counted).

Scenarios (each on a fresh table):
  * guest, steady: each user's messages after their first;
  * linked account, steady: the same for identities linked to accounts;
  * web, steady: the same for an account the web knows from its session;
  * first message of an identity this process has not seen;
  * two processes on one conversation: an account's Telegram and Discord identities,
    served by two stores (clients), taking turns.

Run: ``.venv/bin/python bench/store.py`` (``--quick`` for a smoke run; ``--json PATH``
also writes the headline figures for ``bench/all.py``). Not a test.
Goal: at most 3 calls per chat message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Figure, add_json_option, emit
from bot import engine_parts
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import RateLimitSettings
from bot.engine import Engine
from bot.messages import Identity, Incoming, ReplyDone
from bot.personas import PersonaLibrary
from bot.store.dynamo import DynamoStore, create_table

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What is Docker?",
    "How do I make my Lambda function faster?",
    "Tell me about DynamoDB partition keys",
    "hello!",
    "why should I write tests?",
    "thanks, that helps",
]
REGION = "us-east-1"
GOAL_CALLS = 3  # DynamoDB calls per chat message, steady state


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's DynamoDB in its own process, on a free loopback port; dummy credentials."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    with subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "moto_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as server:
        assert server.stdin is not None and server.stdout is not None
        port = server.stdout.readline().strip()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stdin.close()
            server.wait(timeout=30)


@asynccontextmanager
async def store_on(endpoint: str, table: str | None = None) -> AsyncIterator[DynamoStore]:
    """A store on a fresh table (created by ``create_table``), or on ``table``."""
    async with DynamoStore(
        table or f"bench-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint, region=REGION
    ) as store:
        if table is None:
            await create_table(store, poll_interval=0.05)
        yield store


def build_engine(store: DynamoStore) -> Engine:
    personas = PersonaLibrary.from_directory(ROOT / "personas", "ada")
    guard = ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy())
    unlimited = RateLimitSettings(per_minute=1e9, burst=10**9)
    return engine_parts.build_engine(store, personas, guard, rate_limit=unlimited)


def incoming(platform: str, user: str, n: int) -> Incoming:
    return Incoming(platform, user, user, user, True, QUESTIONS[n % len(QUESTIONS)])


@dataclass
class Tally:
    """Calls, by operation, and client CPU and wall time of the messages measured."""

    messages: int = 0
    calls: list[int] = field(default_factory=list)
    by_operation: Counter[str] = field(default_factory=Counter)
    cpu: float = 0.0
    wall: float = 0.0

    async def message(self, engine: Engine, store: DynamoStore, message: Incoming) -> None:
        before, operations = store.stats.total_calls, Counter(store.stats.calls)
        cpu, wall = time.process_time(), time.perf_counter()
        done = None
        async for event in engine.handle(message):
            if isinstance(event, ReplyDone):
                done = event
        self.cpu += time.process_time() - cpu
        self.wall += time.perf_counter() - wall
        assert done is not None and done.kind == "chat", done
        self.messages += 1
        self.calls.append(store.stats.total_calls - before)
        self.by_operation.update(store.stats.calls - operations)


async def steady(endpoint: str, users: int, rounds: int, *, kind: str) -> tuple[Tally, Tally]:
    """Each user's first message (cold), then ``rounds`` more each (steady), through a
    store that has seen none of them before. ``kind``: ``guest``, ``linked`` (an
    identity linked to an account) or ``web`` (the account known from a web session)."""
    cold, warm = Tally(), Tally()
    async with store_on(endpoint) as setup:
        names = [f"user{n}" for n in range(users)]
        accounts = {}
        if kind != "guest":
            for name in names:
                accounts[name] = (await setup.create_account(name, "hash", 1.0)).id
                await setup.link_identity(Identity("bench", name), name, accounts[name], 2.0)

        def message(name: str, n: int) -> Incoming:
            sent = incoming("bench", name, n)
            return replace(sent, account_id=accounts[name]) if kind == "web" else sent

        async with store_on(endpoint, setup.table.name) as store:
            engine = build_engine(store)
            for name in names:
                await cold.message(engine, store, message(name, 0))
            for n in range(1, rounds + 1):
                for name in names:
                    await warm.message(engine, store, message(name, n))
    return cold, warm


async def two_processes(endpoint: str, accounts: int, rounds: int) -> Tally:
    """Telegram and Discord identities of each account, on two stores, taking turns."""
    tally = Tally()
    async with store_on(endpoint) as first, store_on(endpoint, first.table.name) as second:
        telegram, discord = build_engine(first), build_engine(second)
        names = [f"acct{n}" for n in range(accounts)]
        for name in names:
            account = await first.create_account(name, "hash", 1.0)
            await first.link_identity(Identity("telegram", name), name, account.id, 2.0)
            await first.link_identity(Identity("discord", name), name, account.id, 2.0)
        for name in names:  # each process's first message: not counted
            await Tally().message(telegram, first, incoming("telegram", name, 0))
            await Tally().message(discord, second, incoming("discord", name, 0))
        for n in range(1, rounds + 1):
            for name in names:
                await tally.message(telegram, first, incoming("telegram", name, n))
                await tally.message(discord, second, incoming("discord", name, n))
    return tally


def row(name: str, tally: Tally) -> str:
    calls = tally.calls
    per = {op: count / tally.messages for op, count in sorted(tally.by_operation.items())}
    ops = ", ".join(f"{op} {share:.2f}" for op, share in per.items())
    return (
        f"{name:<44} {tally.messages:>8} {statistics.mean(calls):>6.2f} {max(calls):>4} "
        f"{1000 * tally.cpu / tally.messages:>9.2f} {1000 * tally.wall / tally.messages:>9.1f}"
        f"   {ops}"
    )


async def main(quick: bool) -> list[Figure]:
    users, rounds = (10, 5) if quick else (40, 10)
    with moto_server() as endpoint:
        guest_cold, guest_warm = await steady(endpoint, users, rounds, kind="guest")
        linked_cold, linked_warm = await steady(endpoint, users, rounds, kind="linked")
        web_cold, web_warm = await steady(endpoint, users, rounds, kind="web")
        shared = await two_processes(endpoint, users // 2, rounds)
    print("engine + DynamoStore + offline backend against moto's DynamoDB (not DynamoDB:")
    print("its wall times are moto's, not DynamoDB's; calls and client CPU carry over)")
    print(
        f"{'scenario':<44} {'messages':>8} {'calls':>6} {'max':>4} "
        f"{'CPU ms':>9} {'wall ms':>9}   calls per message by operation"
    )
    print(row("guest, steady", guest_warm))
    print(row("linked account, steady", linked_warm))
    print(row("web (account from its session), steady", web_warm))
    print(row("guest, first message here", guest_cold))
    print(row("linked account, first message here", linked_cold))
    print(row("web, first message here", web_cold))
    print(row("two processes taking turns on a conversation", shared))
    steady_state = (guest_warm, linked_warm, web_warm, shared)
    worst = max(statistics.mean(t.calls) for t in steady_state)
    print(f"steady state: at most {worst:.2f} calls per chat message (goal <= {GOAL_CALLS})")
    cpu_ms = 1000 * sum(t.cpu for t in steady_state) / sum(t.messages for t in steady_state)
    first = max(statistics.mean(t.calls) for t in (guest_cold, linked_cold, web_cold))
    moto = "against moto's DynamoDB server: calls and client CPU carry over, wall times do not"
    return [
        Figure(
            "dynamodb",
            "DynamoDB calls per chat message, steady state, worst scenario (mean)",
            worst,
            "calls",
            GOAL_CALLS,
            "lower",
            note=moto,
        ),
        Figure(
            "dynamodb",
            "DynamoDB calls, first message of a conversation this process has not seen"
            " (worst scenario)",
            first,
            "calls",
            note=moto,
        ),
        Figure("dynamodb", "client CPU per chat message, steady state", cpu_ms, "ms", note=moto),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(asyncio.run(main(arguments.quick)), arguments.json)
