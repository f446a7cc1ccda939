"""AWS CDK app for PersonaBridge: see infra/README.md.

Modules, one concern each: ``settings`` (dev/prod presets and CDK context), ``network``,
``table``, ``secrets``, ``load_balancer``, ``service`` (Fargate, task role, logs,
autoscaling), ``environment`` (the container's settings), ``alarms``, and ``stack``
which puts them together.
"""

from .settings import STAGES, DeploySettings, Stage
from .stack import PersonaBridgeStack

__all__ = ["STAGES", "DeploySettings", "PersonaBridgeStack", "Stage"]
