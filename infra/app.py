#!/usr/bin/env python3
"""The CDK app: ``cdk synth`` and ``cdk deploy`` in this directory run ``python app.py``
(with the project's venv active, see README.md). Importable: :func:`build` puts the
stack into any ``App``, which is how the tests synthesise it."""

from __future__ import annotations

import aws_cdk as cdk
from personabridge_infra import DeploySettings, PersonaBridgeStack


def build(app: cdk.App) -> PersonaBridgeStack:
    """Add the stack that ``app``'s context describes (``-c env=prod`` and so on)."""
    settings = DeploySettings.from_context(app.node.try_get_context)
    return PersonaBridgeStack(app, settings.stack_name, settings=settings)


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
