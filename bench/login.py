"""Login timing benchmark: an unknown username against a wrong password.

The login answers the same for both, and should cost the same: an unknown name is
verified against a dummy hash made with the current argon2id parameters. The tests
check the work (one argon2 verify on each path, same parameters); this bench measures
the time, alternating the two so both see the same machine state.

Run: ``.venv/bin/python bench/login.py`` (``--quick`` for a smoke run; ``--json PATH``
also writes the headline figure for ``bench/all.py``). Not a test: the ratio of the
medians should be close to 1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth import OWASP_PARAMS, AccountService, LoginFailed, LoginThrottle, PasswordHasher
from bench.report import Figure, add_json_option, emit
from bot.store.sqlite import SqliteStore

PASSWORD = "correct horse battery"
#: Unknown ÷ wrong medians further from 1 than this would let timing tell them apart.
GOAL_SKEW = 1.25


async def timed_failure(service: AccountService, name: str) -> float:
    started = time.perf_counter()
    try:
        await service.log_in(name, "not the password", address=f"bench-{name}")
    except LoginFailed:
        pass
    else:  # pragma: no cover - the bench's own sanity check
        raise SystemExit(f"log in as {name!r} with a wrong password succeeded")
    return time.perf_counter() - started


async def main(quick: bool) -> list[Figure]:
    rounds = 8 if quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "bench.db") as store:
            # no throttle in the way: every failure here is on purpose
            service = AccountService(
                store, hasher=PasswordHasher(OWASP_PARAMS), throttle=LoginThrottle(limit=10**9)
            )
            await service.sign_up("ada", PASSWORD)
            await timed_failure(service, "warm-up")  # makes the dummy hash once
            unknown: list[float] = []
            wrong: list[float] = []
            for _ in range(rounds):
                unknown.append(await timed_failure(service, "nobody"))
                wrong.append(await timed_failure(service, "ada"))
    unknown_ms = statistics.median(unknown) * 1000
    wrong_ms = statistics.median(wrong) * 1000
    skew = max(unknown_ms, wrong_ms) / min(unknown_ms, wrong_ms)
    print(f"argon2id at OWASP's parameters, {rounds} alternating rounds")
    print(f"  unknown user   median {unknown_ms:8.2f} ms")
    print(f"  wrong password median {wrong_ms:8.2f} ms")
    print(f"  larger ÷ smaller      {skew:8.2f} × (goal ≤ {GOAL_SKEW:.2f} ×)")
    return [
        Figure(
            "login",
            "failed login, unknown user vs wrong password, larger ÷ smaller median",
            skew,
            "×",
            goal=GOAL_SKEW,
            better="lower",
            digits=2,
        ),
        Figure("login", "failed login median, wrong password", wrong_ms, "ms"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(asyncio.run(main(arguments.quick)), arguments.json)
