"""CloudWatch alarms, all notifying one SNS topic (``-c alarmEmail=`` subscribes to it).

- 5xx from the load balancer itself (502/503/504: no healthy task, a task that died
  mid-request) and 5xx from the app;
- no healthy task behind the load balancer (a crash loop at an idle hour shows no 5xx);
- DynamoDB read or write throttle events (on-demand tables still throttle on a hot
  partition or a sudden jump past twice the previous peak).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

PERIOD = Duration.minutes(5)


class Alarms(Construct):
    """The alarms and their topic (``topic``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer: elbv2.ApplicationLoadBalancer,
        target_group: elbv2.ApplicationTargetGroup,
        table: dynamodb.ITable,
        threshold_5xx: int,
        email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", display_name="PersonaBridge alarms")
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self._action = cloudwatch_actions.SnsAction(self.topic)

        metrics = load_balancer.metrics
        self._alarm(
            "LoadBalancer5xx",
            metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=PERIOD),
            threshold=threshold_5xx,
            description="The load balancer answered 5xx (no healthy task, or a task failed).",
        )
        self._alarm(
            "App5xx",
            metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=PERIOD),
            threshold=threshold_5xx,
            description="PersonaBridge answered 5xx (see the service's log group).",
        )
        self._alarm(
            "NoHealthyTask",
            target_group.metrics.healthy_host_count(period=Duration.minutes(1)),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=3,
            missing=cloudwatch.TreatMissingData.BREACHING,
            description="No task passes the /healthz check.",
        )
        self._alarm(
            "DynamoDbThrottled",
            cloudwatch.MathExpression(
                expression="reads + writes",
                using_metrics={
                    "reads": table.metric("ReadThrottleEvents", statistic="Sum"),
                    "writes": table.metric("WriteThrottleEvents", statistic="Sum"),
                },
                label="DynamoDB throttle events",
                period=PERIOD,
            ),
            threshold=1,
            description="DynamoDB throttled reads or writes of the store's table.",
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: int,
        description: str,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        evaluation_periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm
