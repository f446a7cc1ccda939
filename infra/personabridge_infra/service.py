"""The app on ECS Fargate: image from the repository's Dockerfile, task role, logs,
the load balancer's target group and autoscaling."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from .network import Network
from .settings import Stage

WEB_PORT = 8080
HEALTH_CHECK_PATH = "/healthz"

#: The repository root: the Docker build context (filtered by its .dockerignore).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Kept out of the image asset even if .dockerignore is ever loosened: staging copies the
#: context into cdk.out on every synth, and a venv is hundreds of megabytes.
ASSET_EXCLUDES = (".venv", ".git", ".env", "data", "infra/cdk.out", "cdk.out")


class WebService(Construct):
    """One container, ``personabridge run``, behind ``listener``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        listener: elbv2.ApplicationListener,
        table: dynamodb.ITable,
        stage: Stage,
        environment: Mapping[str, str],
        secrets: Mapping[str, ecs.Secret],
        log_retention: logs.RetentionDays,
        image_directory: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN if stage.retain_logs else RemovalPolicy.DESTROY,
        )
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=stage.cpu,
            memory_limit_mib=stage.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        # The app's only AWS permission: data access to its own table and its indexes.
        table.grant_read_write_data(task.task_role)
        task.add_container(
            "web",
            image=ecs.ContainerImage.from_asset(
                str(image_directory),
                exclude=list(ASSET_EXCLUDES),
                # Built where `cdk deploy` runs: pin the platform the task runs on, so an
                # arm64 laptop does not push an image Fargate (x86_64) cannot start.
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            environment=dict(environment),
            secrets=dict(secrets),
            port_mappings=[ecs.PortMapping(container_port=WEB_PORT)],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="web",
                log_group=self.log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
            stop_timeout=Duration.seconds(30),
        )
        self.cluster = ecs.Cluster(self, "Cluster", vpc=network.vpc)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=task,
            desired_count=stage.desired_count,
            assign_public_ip=network.tasks_public,
            vpc_subnets=network.task_subnets,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            health_check_grace_period=Duration.seconds(60),
        )
        self.target_group = listener.add_targets(
            "Web",
            port=WEB_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            # Long enough for a streamed reply to finish, short enough for quick deploys.
            deregistration_delay=Duration.seconds(30),
        )
        self._autoscale(stage)

    def _autoscale(self, stage: Stage) -> None:
        scaling = self.service.auto_scale_task_count(
            min_capacity=stage.min_tasks, max_capacity=stage.max_tasks
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=stage.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=stage.requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
