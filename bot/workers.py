"""``WEB__WORKERS=N``: N processes serving one web port, on one machine.

``personabridge run`` with ``WEB__WORKERS`` above 1 becomes a small supervisor: it
starts N worker processes (``personabridge worker I``) and waits. Each worker opens the
store itself (several SQLite connections to one file in WAL mode, or DynamoDB clients)
and binds the web port with ``SO_REUSEPORT``, so the kernel spreads connections over
them. Everything that must be decided once across workers is decided in the store:
one conversation is answered by one worker at a time (the lease, :mod:`bot.leases`),
one Telegram update or Discord interaction by one worker (:mod:`bot.inbox`).

The gateway clients (Telegram long polling, the Discord gateway) run in worker 0 only:
Telegram allows one ``getUpdates`` consumer per bot, and a Discord connection per
worker would deliver every message N times. Telegram's webhook and Discord's HTTP
interactions are served by every worker.

SIGTERM or SIGINT to the supervisor is passed on to every worker, which stops the way
a single process does (replies in flight finish, within the adapters' shutdown
timeouts); a worker still running after :data:`STOP_GRACE` seconds is killed. A worker
that exits by itself ends the others too, and the supervisor exits non-zero, so the
service manager (systemd, ECS) restarts the whole set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from bot.errors import ConfigError

log = logging.getLogger(__name__)

#: Seconds workers get to stop after SIGTERM before they are killed.
STOP_GRACE = 30.0
#: The worker that runs the gateway clients.
GATEWAY_WORKER = 0
#: Seconds between a worker's checks that its supervisor is still there.
ORPHAN_CHECK = 1.0


async def stop_when_orphaned(stop: asyncio.Event, interval: float = ORPHAN_CHECK) -> None:
    """Set ``stop`` once the supervisor that started this worker is gone (killed with
    SIGKILL, it could not pass a stop on): no worker outlives it."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != parent:
            break
    log.warning("the supervisor (pid %d) is gone: stopping", parent)
    stop.set()


def check_workers(workers: int, port: int) -> None:
    if workers > 1 and port == 0:
        raise ConfigError(
            "PERSONABRIDGE_WEB__WORKERS above 1 needs a fixed PERSONABRIDGE_WEB__PORT "
            "(port 0 would give each worker a port of its own)"
        )


async def supervise(workers: int, *, grace: float = STOP_GRACE) -> int:
    """Run ``workers`` worker processes until a stop signal or until one exits; returns
    the exit status for the supervisor (0 after a requested stop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    processes = [await _start(index) for index in range(workers)]
    log.info("started %d workers: %s", workers, ", ".join(str(p.pid) for p in processes))
    exits = [asyncio.create_task(p.wait()) for p in processes]
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        requested = stop.is_set()
        if not requested:
            ended = [p for p in processes if p.returncode is not None]
            log.error(
                "worker %s exited (status %s): stopping the others",
                ended[0].pid,
                ended[0].returncode,
            )
        await _stop_all(processes, exits, grace)
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0 if requested else 1


async def _start(index: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "worker", str(index), env=dict(os.environ)
    )


async def _stop_all(
    processes: Sequence[asyncio.subprocess.Process],
    exits: Sequence[asyncio.Task[int]],
    grace: float,
) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    _, late = await asyncio.wait(exits, timeout=grace)
    for process in processes:
        if process.returncode is None:
            log.warning("worker %s did not stop within %gs: killed", process.pid, grace)
            process.kill()
    if late:
        await asyncio.wait(late)
