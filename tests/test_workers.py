"""``WEB__WORKERS=2``: ``personabridge run`` starts two worker processes on one port,
one SQLite file; only one runs the Telegram poller; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.errors import ConfigError
from bot.workers import check_workers
from tests.support.telegram_server import TOKEN, FakeBotApi

ROOT = Path(__file__).resolve().parent.parent

WITHIN = 30.0
WORKER_LINE = re.compile(r"worker (\d) of 2 \(pid (\d+)\)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def read_until(
    stream: asyncio.StreamReader, lines: list[str], *wanted: tuple[str, int]
) -> None:
    while any(sum(done in line for line in lines) < count for done, count in wanted):
        try:
            raw = await asyncio.wait_for(stream.readline(), WITHIN)
        except TimeoutError:
            raise AssertionError("no more output:\n" + "\n".join(lines[-40:])) from None
        if not raw:
            raise AssertionError("the server ended early:\n" + "\n".join(lines[-40:]))
        lines.append(raw.decode().rstrip())


def test_a_port_is_needed_for_several_workers() -> None:
    with pytest.raises(ConfigError, match="WEB__PORT"):
        check_workers(2, 0)
    check_workers(1, 0)


async def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    port = free_port()
    async with FakeBotApi() as fake:
        env = {
            **os.environ,
            "PERSONABRIDGE_STORE__SQLITE_PATH": str(tmp_path / "pb.db"),
            "PERSONABRIDGE_PERSONAS_DIR": str(ROOT / "personas"),
            "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml"),
            "PERSONABRIDGE_ENV_FILE": str(tmp_path / "none.env"),
            "PERSONABRIDGE_WEB__PORT": str(port),
            "PERSONABRIDGE_WEB__WORKERS": "2",
            "PERSONABRIDGE_TELEGRAM__TOKEN": TOKEN,
            "PERSONABRIDGE_TELEGRAM__API_BASE_URL": fake.url,
            "PERSONABRIDGE_LOG_LEVEL": "INFO",
        }
        (tmp_path / "none.toml").write_text("")
        parent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=ROOT,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        lines: list[str] = []
        workers: dict[int, int] = {}
        try:
            assert parent.stderr is not None
            wanted = [("web server listening", 2), ("telegram adapter started as", 1)]
            await read_until(parent.stderr, lines, *wanted)
            workers = {int(m[1]): int(m[2]) for m in map(WORKER_LINE.search, lines) if m}
            assert sorted(workers) == [0, 1]
            assert sum("telegram adapter started as" in line for line in lines) == 1
            async with aiohttp.ClientSession() as session:
                for _ in range(6):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        assert response.status == 200
            parent.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(parent.wait(), WITHIN) == 0
        finally:
            if parent.returncode is None:
                parent.kill()  # its workers see it gone and stop (stop_when_orphaned)
                await asyncio.wait_for(parent.wait(), WITHIN)
        assert not any(alive(pid) for pid in workers.values())
