"""CDK assertions over the synthesised PersonaBridge stack (dev and prod variants).

A failed ``Template`` expectation raises ``RuntimeError`` (jsii wraps it), which pytest
reports as a failure all the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.support.cdk_synth import PROD_CONTEXT, Synthesised, only, resources_of

SECRET_SETTINGS = (
    "TELEGRAM__TOKEN",
    "TELEGRAM__WEBHOOK_SECRET",
    "DISCORD__TOKEN",
    "DISCORD__PUBLIC_KEY",
    "OPENAI__API_KEY",
    "CHARACTERAI__TOKEN",
)


def _container(synth: Synthesised) -> dict[str, Any]:
    _, task = only(synth, "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    return container


def _environment(synth: Synthesised) -> dict[str, Any]:
    return {entry["Name"]: entry["Value"] for entry in _container(synth)["Environment"]}


# --- the table -------------------------------------------------------------------------


def test_table_keys_billing_ttl_and_pitr(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


@pytest.mark.parametrize(
    ("variant", "protected"),
    [pytest.param("dev_stack", False, id="dev"), pytest.param("prod_stack", True, id="prod")],
)
def test_table_is_retained_in_every_environment(
    variant: str, protected: bool, request: pytest.FixtureRequest
) -> None:
    synth: Synthesised = request.getfixturevalue(variant)
    synth.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like({"DeletionProtectionEnabled": protected}),
        },
    )


# --- permissions -----------------------------------------------------------------------


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_table_arn(resource: Any, table_id: str) -> bool:
    """The table's ARN, or ``<table ARN>/index/*`` (its indexes)."""
    arn = {"Fn::GetAtt": [table_id, "Arn"]}
    if resource == arn:
        return True
    parts = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
    return parts == [arn, "/index/*"]


def test_task_role_may_use_only_its_own_table(dev_stack: Synthesised) -> None:
    table_id, _ = only(dev_stack, "AWS::DynamoDB::Table")
    _, task = only(dev_stack, "AWS::ECS::TaskDefinition")
    task_role_id = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]

    dynamodb_statements = []
    for policy_id, policy in resources_of(dev_stack, "AWS::IAM::Policy").items():
        for statement in _statements(policy):
            actions = _as_list(statement["Action"])
            assert "*" not in actions, policy_id
            assert "dynamodb:*" not in actions, policy_id
            if any(action.startswith("dynamodb:") for action in actions):
                assert policy["Properties"]["Roles"] == [{"Ref": task_role_id}], policy_id
                dynamodb_statements.append(statement)

    assert dynamodb_statements, "the task role has no DynamoDB permission at all"
    for statement in dynamodb_statements:
        assert statement["Effect"] == "Allow"
        resources = _as_list(statement["Resource"])
        assert "*" not in resources
        assert all(_is_table_arn(resource, table_id) for resource in resources), resources
    granted = {action for s in dynamodb_statements for action in _as_list(s["Action"])}
    # What the store needs: conditional writes, queries, transactions (authorised per item).
    assert {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "dynamodb:BatchWriteItem",
    } <= granted
    # ...and nothing that changes the table itself: that is the stack's job.
    admin = {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable"}
    assert admin.isdisjoint(granted)


def test_roles_carry_no_managed_full_access_policy(dev_stack: Synthesised) -> None:
    for role_id, role in resources_of(dev_stack, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert "FullAccess" not in str(arn), role_id


# --- secrets and environment -----------------------------------------------------------


def test_enabled_integrations_get_their_secrets_as_environment(prod_stack: Synthesised) -> None:
    secret_ids = set(resources_of(prod_stack, "AWS::SecretsManager::Secret"))
    secrets = _container(prod_stack)["Secrets"]

    # Every enabled integration's settings; not the gateway token (single-task only).
    assert [entry["Name"] for entry in secrets] == [
        f"PERSONABRIDGE_{setting}" for setting in SECRET_SETTINGS if setting != "DISCORD__TOKEN"
    ]
    for entry in secrets:
        assert entry["ValueFrom"]["Ref"] in secret_ids, entry


def test_every_secret_exists_named_for_its_setting(dev_stack: Synthesised) -> None:
    dev_stack.template.resource_count_is("AWS::SecretsManager::Secret", len(SECRET_SETTINGS))
    for setting in SECRET_SETTINGS:
        dev_stack.template.has_resource_properties(
            "AWS::SecretsManager::Secret", {"Name": f"personabridge/dev/{setting}"}
        )


def test_the_webhook_secret_is_generated_in_telegrams_alphabet(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "personabridge/dev/TELEGRAM__WEBHOOK_SECRET",
            "GenerateSecretString": Match.object_like({"ExcludePunctuation": True}),
        },
    )


def test_execution_role_reads_the_secrets_and_task_role_does_not(prod_stack: Synthesised) -> None:
    _, task = only(prod_stack, "AWS::ECS::TaskDefinition")
    execution_role = task["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    readers = {
        policy["Properties"]["Roles"][0]["Ref"]
        for policy in resources_of(prod_stack, "AWS::IAM::Policy").values()
        for statement in _statements(policy)
        if "secretsmanager:GetSecretValue" in _as_list(statement["Action"])
    }
    assert readers == {execution_role}


def test_without_integrations_no_secret_is_injected(dev_stack: Synthesised) -> None:
    # A secret without its real value would switch an adapter on with a bad token.
    assert "Secrets" not in _container(dev_stack)


def test_dev_environment_points_at_the_table_and_the_load_balancer(
    dev_stack: Synthesised,
) -> None:
    table_id, _ = only(dev_stack, "AWS::DynamoDB::Table")
    alb_id, _ = only(dev_stack, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    env = _environment(dev_stack)

    assert env["PERSONABRIDGE_STORE__KIND"] == "dynamodb"
    assert env["PERSONABRIDGE_STORE__DYNAMODB_TABLE"] == {"Ref": table_id}
    assert env["PERSONABRIDGE_STORE__DYNAMODB_REGION"] == {"Ref": "AWS::Region"}
    assert env["PERSONABRIDGE_WEB__HOST"] == "0.0.0.0"
    assert env["PERSONABRIDGE_WEB__PORT"] == "8080"
    assert env["PERSONABRIDGE_TELEGRAM__MODE"] == "webhook"
    assert env["PERSONABRIDGE_WEB__PUBLIC_URL"] == {
        "Fn::Join": ["", ["http://", {"Fn::GetAtt": [alb_id, "DNSName"]}]]
    }
    assert env["PERSONABRIDGE_WEB__SECURE_COOKIES"] == "false"


def test_the_app_trusts_the_forwarded_header_of_the_vpc_only(dev_stack: Synthesised) -> None:
    """Behind the ALB every peer is the balancer: the app must read the client from its
    X-Forwarded-For, and believe it only from the balancer's network (the VPC)."""
    vpc_id, _ = only(dev_stack, "AWS::EC2::VPC")
    env = _environment(dev_stack)
    assert env["PERSONABRIDGE_WEB__TRUSTED_PROXIES"] == {"Fn::GetAtt": [vpc_id, "CidrBlock"]}


def test_prod_environment_uses_the_public_https_url(prod_stack: Synthesised) -> None:
    env = _environment(prod_stack)
    assert env["PERSONABRIDGE_WEB__PUBLIC_URL"] == PROD_CONTEXT["publicUrl"].rstrip("/")
    assert env["PERSONABRIDGE_WEB__SECURE_COOKIES"] == "true"


# --- load balancer, service, autoscaling -----------------------------------------------


def test_target_group_checks_healthz(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "HealthCheckPath": "/healthz",
            "Matcher": {"HttpCode": "200"},
            "Port": 8080,
            "Protocol": "HTTP",
            "TargetType": "ip",
        },
    )


def test_dev_serves_plain_http(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [Match.object_like({"Type": "forward"})],
        },
    )


def test_prod_serves_https_and_redirects_http(prod_stack: Synthesised) -> None:
    prod_stack.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": PROD_CONTEXT["certificateArn"]}],
            "DefaultActions": [Match.object_like({"Type": "forward"})],
        },
    )
    prod_stack.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": Match.object_like(
                        {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}
                    ),
                }
            ],
        },
    )


def test_metrics_are_not_served_to_the_internet(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Conditions": [
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {"Values": Match.array_with(["/metrics"])},
                }
            ],
            "Actions": [Match.object_like({"Type": "fixed-response"})],
        },
    )


def test_service_rolls_back_a_failed_deployment(dev_stack: Synthesised) -> None:
    dev_stack.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            ),
        },
    )


@pytest.mark.parametrize(
    ("variant", "low", "high"),
    [pytest.param("dev_stack", 1, 2, id="dev"), pytest.param("prod_stack", 2, 8, id="prod")],
)
def test_autoscaling_on_cpu_and_requests(
    variant: str, low: int, high: int, request: pytest.FixtureRequest
) -> None:
    synth: Synthesised = request.getfixturevalue(variant)
    synth.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": low, "MaxCapacity": high, "ScalableDimension": "ecs:service:DesiredCount"},
    )
    metrics = {
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]
        for policy in resources_of(synth, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


# --- logs and alarms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "days", "policy"),
    [
        pytest.param("dev_stack", 7, "Delete", id="dev"),
        pytest.param("prod_stack", 90, "Retain", id="prod"),
    ],
)
def test_log_group_retention(
    variant: str, days: int, policy: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesised = request.getfixturevalue(variant)
    synth.template.has_resource(
        "AWS::Logs::LogGroup", {"Properties": {"RetentionInDays": days}, "DeletionPolicy": policy}
    )


def test_alarms_watch_5xx_and_throttling(dev_stack: Synthesised) -> None:
    topic_id, _ = only(dev_stack, "AWS::SNS::Topic")
    alarms = resources_of(dev_stack, "AWS::CloudWatch::Alarm").values()
    watched: set[str] = set()
    for alarm in alarms:
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        if "MetricName" in props:
            watched.add(props["MetricName"])
        for metric in props.get("Metrics", []):
            if "MetricStat" in metric:
                watched.add(metric["MetricStat"]["Metric"]["MetricName"])
    assert {
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    } <= watched


def test_alarm_email_subscribes_to_the_topic(prod_stack: Synthesised) -> None:
    prod_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": PROD_CONTEXT["alarmEmail"]}
    )


# --- what gets created, counted --------------------------------------------------------

COMMON_COUNTS = {
    "AWS::DynamoDB::Table": 1,
    "AWS::SecretsManager::Secret": 6,
    "AWS::ECS::Cluster": 1,
    "AWS::ECS::TaskDefinition": 1,
    "AWS::ECS::Service": 1,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": 1,
    "AWS::ElasticLoadBalancingV2::TargetGroup": 1,
    "AWS::ElasticLoadBalancingV2::ListenerRule": 1,
    "AWS::ApplicationAutoScaling::ScalableTarget": 1,
    "AWS::ApplicationAutoScaling::ScalingPolicy": 2,
    "AWS::CloudWatch::Alarm": 4,
    "AWS::Logs::LogGroup": 1,
    "AWS::SNS::Topic": 1,
    "AWS::EC2::VPC": 1,
    "AWS::EC2::VPCEndpoint": 1,
    "AWS::IAM::Role": 3,  # task, task execution, default-security-group lockdown
}


@pytest.mark.parametrize(
    ("variant", "counts"),
    [
        pytest.param(
            "dev_stack",
            {
                "AWS::ElasticLoadBalancingV2::Listener": 1,
                "AWS::EC2::Subnet": 2,
                "AWS::EC2::NatGateway": 0,
                "AWS::SNS::Subscription": 0,
            },
            id="dev",
        ),
        pytest.param(
            "prod_stack",
            {
                "AWS::ElasticLoadBalancingV2::Listener": 2,
                "AWS::EC2::Subnet": 4,
                "AWS::EC2::NatGateway": 1,
                "AWS::SNS::Subscription": 1,
            },
            id="prod",
        ),
    ],
)
def test_resource_counts(
    variant: str, counts: dict[str, int], request: pytest.FixtureRequest
) -> None:
    synth: Synthesised = request.getfixturevalue(variant)
    for kind, count in {**COMMON_COUNTS, **counts}.items():
        synth.template.resource_count_is(kind, count)


def test_prod_tasks_run_in_private_subnets(prod_stack: Synthesised) -> None:
    _, service = only(prod_stack, "AWS::ECS::Service")
    network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    private = {
        key
        for key, subnet in resources_of(prod_stack, "AWS::EC2::Subnet").items()
        if not subnet["Properties"]["MapPublicIpOnLaunch"]
    }
    assert {subnet["Ref"] for subnet in network["Subnets"]} == private


# --- the image asset -------------------------------------------------------------------


def test_image_asset_holds_only_what_the_image_needs(dev_stack: Synthesised) -> None:
    staged = {path.name for path in dev_stack.image_asset_dir.iterdir()}
    needed = {"Dockerfile", "pyproject.toml", "README.md", "bot", "adapters", "auth", "personas"}
    assert needed <= staged
    for unwanted in (".venv", ".git", ".env", "tests", "infra", "data", "bench", ".mypy_cache"):
        assert unwanted not in staged
    assert not list(dev_stack.image_asset_dir.rglob("__pycache__"))
