"""Several processes opening one new SQLite file at the same moment (workers starting
side by side) all get a ready store: one migrates, the others wait for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN_ONE = """
import asyncio, sys
from bot.store.sqlite import SqliteStore

async def main() -> None:
    async with SqliteStore(sys.argv[1]) as store:
        await store.ping()

asyncio.run(main())
"""


def test_processes_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for round_ in range(5):
        path = tmp_path / f"round{round_}.db"
        children = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_ONE, str(path)],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outcomes = [child.communicate(timeout=60) for child in children]
        failed = [
            err for child, (_, err) in zip(children, outcomes, strict=True) if child.returncode
        ]
        assert not failed, failed
