"""Synthesise the CDK app the way ``cdk synth`` in ``infra/`` would: same entry point
(``infra/app.py``), same context (``infra/cdk.json``) plus the test's own ``-c`` values."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

PROD_CONTEXT = {
    "env": "prod",
    "certificateArn": (
        "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    ),
    "publicUrl": "https://chat.example.com/",
    "alarmEmail": "ops@example.com",
    "integrations": "telegram,discord,openai,characterai",
}


@dataclass(frozen=True)
class Synthesised:
    """One synthesised stack: its template (as assertions and as plain JSON) and where
    the cloud assembly, with the staged image asset, was written."""

    template: Template
    resources: dict[str, Any]
    assembly_dir: Path
    image_asset_dir: Path


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((INFRA / "cdk.json").read_text())["context"])


def import_infra(name: str) -> ModuleType:
    """Import ``personabridge_infra.<name>`` from ``infra/``, where the CLI finds it."""
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    return importlib.import_module(f"personabridge_infra.{name}")


def load_app_module() -> ModuleType:
    """Import ``infra/app.py`` (it imports ``personabridge_infra`` from its own folder,
    as it does when the CDK CLI runs it there)."""
    import_infra("stack")
    spec = importlib.util.spec_from_file_location("personabridge_infra_app", INFRA / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthesise(context: dict[str, Any], outdir: Path) -> Synthesised:
    app = cdk.App(context={**cdk_json_context(), **context}, outdir=str(outdir))
    stack = load_app_module().build(app)
    template = Template.from_stack(stack)
    return Synthesised(
        template=template,
        resources=template.to_json()["Resources"],
        assembly_dir=outdir,
        image_asset_dir=_image_asset_dir(outdir, stack.stack_name),
    )


def _image_asset_dir(outdir: Path, stack_name: str) -> Path:
    assets = json.loads((outdir / f"{stack_name}.assets.json").read_text())
    images = list(assets.get("dockerImages", {}).values())
    assert len(images) == 1, f"expected one Docker image asset, got {len(images)}"
    return outdir / images[0]["source"]["directory"]


def resources_of(synth: Synthesised, kind: str) -> dict[str, Any]:
    return {key: value for key, value in synth.resources.items() if value["Type"] == kind}


def only(synth: Synthesised, kind: str) -> tuple[str, dict[str, Any]]:
    """The logical id and body of the one resource of ``kind``."""
    found = resources_of(synth, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))
