"""Deployment settings: a dev or prod preset, adjusted by CDK context.

``cdk deploy -c env=prod -c certificateArn=arn:... -c maxTasks=6`` picks the prod preset
and overrides one of its fields. Context values arrive as strings from ``-c`` and as
JSON values from ``cdk.json``; both are accepted. Unknown environments and malformed
numbers raise ``ValueError`` before anything is synthesised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_logs as logs

from .secrets import INTEGRATIONS

ContextReader = Callable[[str], Any]


@dataclass(frozen=True)
class Stage:
    """Sizes and safety switches that differ between dev and prod."""

    name: str
    desired_count: int
    min_tasks: int
    max_tasks: int
    cpu: int  # Fargate CPU units: 256 = 0.25 vCPU
    memory_mib: int
    log_retention_days: int
    retain_logs: bool  # keep the log group when the stack is deleted
    nat_gateways: int  # 0: tasks in public subnets with public IPs, no NAT cost
    table_deletion_protection: bool
    cpu_target_percent: int
    requests_per_target: int  # ALB requests per task per minute before scaling out
    alarm_5xx_threshold: int  # 5xx responses per 5 minutes


STAGES: Mapping[str, Stage] = {
    "dev": Stage(
        name="dev",
        desired_count=1,
        min_tasks=1,
        max_tasks=2,
        cpu=256,
        memory_mib=512,
        log_retention_days=7,
        retain_logs=False,
        nat_gateways=0,
        table_deletion_protection=False,
        cpu_target_percent=70,
        requests_per_target=600,
        alarm_5xx_threshold=20,
    ),
    "prod": Stage(
        name="prod",
        desired_count=2,
        min_tasks=2,
        max_tasks=8,
        cpu=512,
        memory_mib=1024,
        log_retention_days=90,
        retain_logs=True,
        nat_gateways=1,
        table_deletion_protection=True,
        cpu_target_percent=60,
        requests_per_target=600,
        alarm_5xx_threshold=10,
    ),
}

#: Context keys that override a field of the preset (camelCase, as CDK context usually is).
STAGE_OVERRIDES: Mapping[str, str] = {
    "desiredCount": "desired_count",
    "minTasks": "min_tasks",
    "maxTasks": "max_tasks",
    "cpu": "cpu",
    "memoryMiB": "memory_mib",
    "logRetentionDays": "log_retention_days",
    "retainLogs": "retain_logs",
    "natGateways": "nat_gateways",
    "tableDeletionProtection": "table_deletion_protection",
    "cpuTargetPercent": "cpu_target_percent",
    "requestsPerTarget": "requests_per_target",
    "alarm5xxThreshold": "alarm_5xx_threshold",
}

_RETENTION: Mapping[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


@dataclass(frozen=True)
class DeploySettings:
    """Everything the stack is told: the stage plus the optional per-deployment values."""

    stage: Stage
    certificate_arn: str | None = None
    public_url: str | None = None
    alarm_email: str | None = None
    integrations: frozenset[str] = frozenset()

    @property
    def stack_name(self) -> str:
        return f"PersonaBridge-{self.stage.name}"

    @property
    def https(self) -> bool:
        return self.certificate_arn is not None

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.stage.log_retention_days]

    @classmethod
    def from_context(cls, context: ContextReader) -> DeploySettings:
        """Read the settings with ``context`` (usually ``app.node.try_get_context``)."""
        env = str(context("env") or "dev")
        if env not in STAGES:
            raise ValueError(f"context env={env!r}: expected one of {sorted(STAGES)}")
        stage = _override(STAGES[env], context)
        return cls(
            stage=stage,
            certificate_arn=_text(context("certificateArn")),
            public_url=_public_url(context("publicUrl")),
            alarm_email=_text(context("alarmEmail")),
            integrations=_integrations(context("integrations")),
        )._checked()

    def _checked(self) -> DeploySettings:
        """Refuse combinations that deploy but cannot work."""
        if "telegram" in self.integrations and not (self.https or _is_https(self.public_url)):
            raise ValueError(
                "integrations=telegram: Telegram delivers webhooks over HTTPS only; "
                "set certificateArn and publicUrl (or an https:// publicUrl in front)"
            )
        if "discord-gateway" in self.integrations and self.stage.max_tasks > 1:
            raise ValueError(
                "integrations=discord-gateway: every task would open its own gateway "
                "session and answer each message once per task; run it with "
                "-c minTasks=1 -c desiredCount=1 -c maxTasks=1 (HTTP interactions, "
                "integrations=discord, scale without that limit)"
            )
        return self


def _override(stage: Stage, context: ContextReader) -> Stage:
    changes: dict[str, Any] = {}
    types = {field.name: field.type for field in dataclasses.fields(Stage)}
    for key, field_name in STAGE_OVERRIDES.items():
        value = context(key)
        if value is None:
            continue
        changes[field_name] = _coerce(key, value, types[field_name])
    stage = dataclasses.replace(stage, **changes)
    _validate(stage)
    return stage


def _coerce(key: str, value: Any, kind: Any) -> int | bool:
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise ValueError(f"context {key}={value!r}: expected true or false")
        return text == "true"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"context {key}={value!r}: expected a whole number") from None


def _validate(stage: Stage) -> None:
    if not 1 <= stage.min_tasks <= stage.desired_count <= stage.max_tasks:
        raise ValueError(
            f"tasks: need 1 <= minTasks ({stage.min_tasks}) <= desiredCount "
            f"({stage.desired_count}) <= maxTasks ({stage.max_tasks})"
        )
    if stage.log_retention_days not in _RETENTION:
        raise ValueError(
            f"logRetentionDays={stage.log_retention_days}: expected one of {sorted(_RETENTION)}"
        )
    if stage.nat_gateways < 0:
        raise ValueError("natGateways: must not be negative")


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _public_url(value: Any) -> str | None:
    url = _text(value)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError(f"context publicUrl={url!r}: expected an http(s):// URL")
    return url.rstrip("/") if url else None


def _is_https(url: str | None) -> bool:
    return url is not None and url.startswith("https://")


def _integrations(value: Any) -> frozenset[str]:
    """``"telegram,discord"`` (from ``-c``) or ``["telegram"]`` (from cdk.json);
    ``all`` enables every one."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {str(item).strip().lower() for item in items} - {""}
    if "all" in names:
        return frozenset(INTEGRATIONS)
    unknown = names - set(INTEGRATIONS)
    if unknown:
        raise ValueError(
            f"context integrations: unknown {sorted(unknown)}; expected any of "
            f"{sorted(INTEGRATIONS)} or 'all'"
        )
    return frozenset(names)
