"""`personabridge db create|check` against moto's DynamoDB server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def db(action: str, endpoint: str, table: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "none.toml").write_text("")
    env = {
        **os.environ,
        "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml"),
        "PERSONABRIDGE_STORE__KIND": "dynamodb",
        "PERSONABRIDGE_STORE__DYNAMODB_TABLE": table,
        "PERSONABRIDGE_STORE__DYNAMODB_ENDPOINT_URL": endpoint,
        "PERSONABRIDGE_STORE__DYNAMODB_REGION": "us-east-1",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", action],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_db_create_is_idempotent_and_check_agrees(moto_endpoint: str, tmp_path: Path) -> None:
    table = f"cli-{uuid.uuid4().hex[:8]}"
    missing = db("check", moto_endpoint, table, tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stdout
    created = db("create", moto_endpoint, table, tmp_path)
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout and "TTL enabled" in created.stdout
    again = db("create", moto_endpoint, table, tmp_path)
    assert again.returncode == 0 and "created" not in again.stdout
    checked = db("check", moto_endpoint, table, tmp_path)
    assert checked.returncode == 0 and ": ok" in checked.stdout


def test_db_needs_the_dynamodb_store(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PERSONABRIDGE_CONFIG": str(tmp_path / "none.toml")},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2 and "STORE__KIND=dynamodb" in result.stderr
