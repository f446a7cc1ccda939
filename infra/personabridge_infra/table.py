"""The DynamoDB table of the single-table store.

The key names must match the DynamoDB store's (under ``bot/store/``): string ``PK`` and ``SK``,
TTL on ``expires_at``. To add a global secondary index, append an :class:`IndexSpec` to
:data:`GLOBAL_INDEXES`; the task role's grant covers every index of the table without
further change. CloudFormation creates or deletes one GSI per stack update: add two in
two deploys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

PARTITION_KEY = "PK"
SORT_KEY = "SK"
TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index: string keys, all attributes projected by default."""

    name: str
    partition_key: str
    sort_key: str | None = None
    projection: dynamodb.ProjectionType = dynamodb.ProjectionType.ALL


#: The store's global secondary indexes (none yet), e.g.
#: ``IndexSpec("GSI1", partition_key="GSI1PK", sort_key="GSI1SK")``.
GLOBAL_INDEXES: tuple[IndexSpec, ...] = ()


class StoreTable(Construct):
    """On-demand, point-in-time recovery, TTL, and retained when the stack is deleted:
    the table holds every account and conversation, and no ``cdk destroy`` should take
    them along (in dev neither: deleting a dev table is one explicit CLI call)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deletion_protection: bool,
        indexes: Sequence[IndexSpec] = GLOBAL_INDEXES,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_string(PARTITION_KEY),
            sort_key=_string(SORT_KEY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=deletion_protection,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_string(index.partition_key),
                sort_key=_string(index.sort_key) if index.sort_key else None,
                projection_type=index.projection,
            )


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
