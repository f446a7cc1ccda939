"""A worker killed while it holds a conversation's lease, for ``test_lease_crash.py``.

``python lease_child.py sqlite PATH ACCOUNT`` or ``python lease_child.py dynamodb
ENDPOINT TABLE ACCOUNT``: sends one web message of ACCOUNT to a persona whose reply
never ends, prints ``HOLDING`` once the reply streams (the user's turn is stored and the
lease taken), then waits to be killed (SIGKILL: the lease is never released). Exits by
itself (status 3) after ``LIFETIME`` seconds. Run with ``PYTHONPATH`` holding the
repository.
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import AbstractAsyncContextManager

from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import EngineSettings, RateLimitSettings
from bot.engine_parts import build_engine
from bot.messages import Incoming, TextDelta
from bot.personas import PersonaLibrary
from bot.store.base import Store
from bot.store.dynamo import DynamoStore
from bot.store.sqlite import SqliteStore
from tests.reliability.crash_child import EndlessStream, say
from tests.support.fakes import make_persona

LIFETIME = 60.0
#: Seconds the lease holds: short, so the test's other worker waits little.
LEASE_SECONDS = 3.0


def open_store(argv: list[str]) -> tuple[AbstractAsyncContextManager[Store], str]:
    if argv[0] == "sqlite":
        return SqliteStore(argv[1]), argv[2]
    return DynamoStore(argv[2], endpoint_url=argv[1], region="us-east-1"), argv[3]


async def main(argv: list[str]) -> None:
    opened, account_id = open_store(argv)
    async with opened as store:
        backend = EndlessStream()
        engine = build_engine(
            store,
            PersonaLibrary([make_persona("ada", "Professor Ada", backend=backend.name)]),
            ReplyGuard({backend.name: backend}, GuardPolicy(total_timeout=120.0, retries=0)),
            settings=EngineSettings(summary=False, lease_seconds=LEASE_SECONDS),
            rate_limit=RateLimitSettings(per_minute=1e9, burst=10**9),
        )
        message = Incoming(
            "web", account_id, "A", account_id, True, "from A", account_id=account_id
        )
        async for event in engine.handle(message):
            if isinstance(event, TextDelta):
                say("HOLDING")
                await asyncio.sleep(LIFETIME)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1:]), LIFETIME))
    except TimeoutError:
        os._exit(3)  # nobody killed us: the test has gone away
