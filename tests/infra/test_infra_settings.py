"""Deployment settings from CDK context, and the CDK entry point as the CLI runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cdk_synth import INFRA, cdk_json_context, import_infra

DeploySettings = import_infra("settings").DeploySettings


def _read(context: dict[str, Any]) -> Any:
    return DeploySettings.from_context(context.get)


def test_dev_is_the_default() -> None:
    settings = _read({})
    assert settings.stack_name == "PersonaBridge-dev"
    assert not settings.https
    assert settings.integrations == frozenset()


def test_prod_preset_with_overrides_from_the_command_line() -> None:
    # `-c` values arrive as strings.
    settings = _read(
        {
            "env": "prod",
            "maxTasks": "6",
            "retainLogs": "false",
            "integrations": "telegram, openai",
            "publicUrl": "https://chat.example.com",
        }
    )
    assert settings.stack_name == "PersonaBridge-prod"
    assert (settings.stage.min_tasks, settings.stage.max_tasks) == (2, 6)
    assert settings.stage.retain_logs is False
    assert settings.integrations == {"telegram", "openai"}


def test_cdk_json_values_keep_their_types() -> None:
    settings = _read({"env": "dev", "maxTasks": 3, "integrations": ["discord"]})
    assert settings.stage.max_tasks == 3
    assert settings.integrations == {"discord"}


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        pytest.param({"env": "staging"}, "env='staging'", id="unknown-env"),
        pytest.param({"maxTasks": "many"}, "maxTasks='many'", id="not-a-number"),
        pytest.param({"minTasks": "3"}, "minTasks (3)", id="min-above-desired"),
        pytest.param({"logRetentionDays": "10"}, "logRetentionDays=10", id="retention"),
        pytest.param({"integrations": "slack"}, "slack", id="unknown-integration"),
        pytest.param({"publicUrl": "chat.example.com"}, "publicUrl", id="url-without-scheme"),
        pytest.param({"retainLogs": "maybe"}, "retainLogs", id="not-a-bool"),
        pytest.param({"integrations": "telegram"}, "HTTPS", id="telegram-over-http"),
        pytest.param(
            {"integrations": "discord-gateway", "publicUrl": "https://x.example"},
            "maxTasks=1",
            id="gateway-on-many-tasks",
        ),
    ],
)
def test_bad_context_is_refused_with_its_name(context: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        _read(context)


def test_the_gateway_runs_on_a_single_task() -> None:
    settings = _read(
        {"integrations": "discord-gateway", "minTasks": 1, "desiredCount": 1, "maxTasks": 1}
    )
    assert settings.integrations == {"discord-gateway"}


def test_all_means_every_integration() -> None:
    settings = _read(
        {"integrations": "all", "publicUrl": "https://chat.example.com", "maxTasks": "1"}
    )
    assert settings.integrations == set(import_infra("secrets").INTEGRATIONS)


def test_the_gateway_integration_injects_only_the_bot_token() -> None:
    import aws_cdk as cdk

    secrets = import_infra("secrets").AppSecrets(cdk.Stack(), "Secrets", env_name="test")
    assert set(secrets.container_secrets({"discord-gateway"})) == {"PERSONABRIDGE_DISCORD__TOKEN"}
    assert set(secrets.container_secrets({"discord"})) == {"PERSONABRIDGE_DISCORD__PUBLIC_KEY"}


def test_cdk_json_runs_the_app_as_the_cli_would(tmp_path: Path) -> None:
    """`cdk synth` runs cdk.json's "app" in infra/ with CDK_OUTDIR and CDK_CONTEXT_JSON."""
    command = shlex.split(json.loads((INFRA / "cdk.json").read_text())["app"])
    assert command[0] in ("python", "python3")
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), "env": "prod"}),
    }
    result = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=INFRA,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "PersonaBridge-prod" in manifest["artifacts"]
