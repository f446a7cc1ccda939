"""The app as ``personabridge run`` wires it (``bot.app.PersonaBridge``), for tests:
settings from an environment, the CLI in a subprocess, and the app's own ``serve`` with
a short backoff."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import PersonaBridge
from bot.app_settings import Settings, load_settings
from bot.backoff import Backoff

ROOT = Path(__file__).resolve().parents[2]


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an app on a SQLite file in ``tmp_path``, the shipped personas,
    the web page on a free port, no config file; ``extra`` adds ``PERSONABRIDGE_<name>``."""
    (tmp_path / "none.toml").write_text("")
    env = {
        "PERSONABRIDGE_STORE__SQLITE_PATH": str(tmp_path / "pb.db"),
        "PERSONABRIDGE_PERSONAS_DIR": str(ROOT / "personas"),
        "PERSONABRIDGE_WEB__PORT": "0",
        "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml"),
        "PERSONABRIDGE_ENV_FILE": str(tmp_path / "none.env"),
    }
    return env | {f"PERSONABRIDGE_{name}": value for name, value in extra.items()}


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    """The settings ``personabridge run`` would load from :func:`base_env`."""
    return load_settings(base_env(tmp_path, **extra), use_dotenv=False)


async def run_cli(env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """``personabridge run`` in a subprocess (the test's loop keeps serving the fake
    platform meanwhile); its exit status and standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        env={**os.environ, **env},
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, err.decode()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@dataclass
class Serving:
    bridge: PersonaBridge
    web_url: str

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.web_url + "/healthz") as response,
        ):
            return response.status, await response.json()


@asynccontextmanager
async def serving(env: dict[str, str]) -> AsyncIterator[Serving]:
    """The app as ``personabridge run`` runs it, retrying within fractions of a second."""
    async with PersonaBridge(load_settings(env, use_dotenv=False)) as bridge:
        bridge.startup_backoff = Backoff(0.05, cap=0.2)
        adapters = bridge.enabled_adapters()
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.serve(adapters, stop))
        web = adapters[-1]
        await wait_until(lambda: task.done() or getattr(web, "port", None) is not None)
        try:
            yield Serving(bridge, web.url)  # type: ignore[attr-defined]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
