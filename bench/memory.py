"""Memory benchmark: how much the process grows per 10,000 distinct users.

Engine + SqliteStore (temp file) + the offline backend + the shipped personas, in one
process. A first round of users warms everything up (imports, SQLite's page cache, the
window cache filling to its bound, the allocator's arenas); then 10,000 other users
each send a few messages (64 at a time), and the resident set size (RSS, from
``/proc/self/statm`` after a garbage collection) is read before and after. State lives
in the store, and every in-process cache is bounded, so the growth should stay small
however many people have written.

Run: ``.venv/bin/python bench/memory.py`` (``--quick``: 2,000 users, growth scaled to
10,000; ``--json PATH`` also writes the headline figure for ``bench/all.py``). Linux
only (``/proc``). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import Figure, add_json_option, emit  # noqa: E402
from bot.backends.guard import GuardPolicy, ReplyGuard  # noqa: E402
from bot.backends.offline import OfflineBackend  # noqa: E402
from bot.config import RateLimitSettings  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.engine_parts import build_engine  # noqa: E402
from bot.messages import Incoming, ReplyDone  # noqa: E402
from bot.personas import PersonaLibrary  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402

GOAL_MB = 10.0  # per 10,000 distinct users
PER_USER = 3
CONCURRENT = 64
QUESTIONS = ["hello!", "What is Docker?", "how do I make my Lambda function faster?"]


def rss_mb() -> float:
    """Resident set size now, after collecting garbage."""
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def chat(engine: Engine, user: int) -> None:
    for n in range(PER_USER):
        message = Incoming(
            platform="telegram",
            user_id=str(user),
            display_name=f"user{user}",
            chat_id=str(user),
            private=True,
            text=f"{QUESTIONS[n % len(QUESTIONS)]} ({user})",
        )
        done = None
        async for event in engine.handle(message):
            if isinstance(event, ReplyDone):
                done = event
        assert done is not None and done.kind == "chat", done


async def users(engine: Engine, first: int, count: int) -> None:
    queue = iter(range(first, first + count))

    async def worker() -> None:
        for user in queue:
            await chat(engine, user)

    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))


async def main(quick: bool) -> list[Figure]:
    warm, measured = (1_000, 2_000) if quick else (3_000, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "bench.db") as store:
            engine = build_engine(
                store,
                PersonaLibrary.from_directory(ROOT / "personas", "ada"),
                ReplyGuard({"offline": OfflineBackend(seed=1)}, GuardPolicy()),
                rate_limit=RateLimitSettings(per_minute=1e9, burst=10**9),
            )
            await users(engine, 1, warm)
            before = rss_mb()
            started = time.perf_counter()
            await users(engine, 1_000_000, measured)
            seconds = time.perf_counter() - started
            after = rss_mb()
            await engine.aclose()
    growth = (after - before) * 10_000 / measured
    print("engine + SqliteStore + offline backend, one process")
    print(f"warm-up: {warm:,} users x {PER_USER} messages; RSS then {before:.1f} MiB")
    print(
        f"then {measured:,} other users x {PER_USER} messages ({measured * PER_USER / seconds:,.0f}"
        f" msg/s): RSS {after:.1f} MiB, growth {after - before:+.1f} MiB"
    )
    print(f"growth per 10,000 users: {growth:.1f} MiB (goal <= {GOAL_MB:g} MiB)")
    return [
        Figure(
            "memory",
            f"RSS growth per 10,000 distinct users, {PER_USER} messages each",
            growth,
            "MiB",
            GOAL_MB,
            "lower",
            note=f"engine + SQLite + offline backend in one process; after {warm:,} users"
            " to warm up; RSS from /proc after a garbage collection"
            + ("; 2,000 users, scaled to 10,000" if quick else ""),
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(asyncio.run(main(arguments.quick)), arguments.json)
