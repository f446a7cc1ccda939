"""The PersonaBridge stack: the pieces of this package put together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, CfnOutput, Stack, Tags
from constructs import Construct

from .alarms import Alarms
from .environment import container_environment
from .load_balancer import PublicLoadBalancer
from .network import Network
from .secrets import AppSecrets
from .service import REPO_ROOT, WebService
from .settings import DeploySettings
from .table import StoreTable


class PersonaBridgeStack(Stack):
    """Table, secrets, load balancer, Fargate service, alarms: see infra/README.md."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        image_directory: Path = REPO_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"PersonaBridge ({settings.stage.name}): persona chat bot on ECS Fargate",
            **kwargs,
        )
        stage = settings.stage
        Tags.of(self).add("project", "personabridge")
        Tags.of(self).add("environment", stage.name)

        network = Network(self, "Network", nat_gateways=stage.nat_gateways)
        table = StoreTable(self, "Store", deletion_protection=stage.table_deletion_protection).table
        secrets = AppSecrets(self, "Secrets", env_name=stage.name)
        load_balancer = PublicLoadBalancer(
            self, "LoadBalancer", vpc=network.vpc, certificate_arn=settings.certificate_arn
        )
        if settings.https and settings.public_url is None:
            Annotations.of(self).add_warning_v2(
                "personabridge:publicUrl",
                "certificateArn without publicUrl: the certificate will not match the "
                "load balancer's own DNS name; set -c publicUrl=https://your.domain",
            )
        public_url = settings.public_url or load_balancer.default_url

        web = WebService(
            self,
            "Web",
            network=network,
            listener=load_balancer.listener,
            table=table,
            stage=stage,
            environment=container_environment(
                table_name=table.table_name,
                region=self.region,
                public_url=public_url,
                trusted_proxies=network.vpc.vpc_cidr_block,
            ),
            secrets=secrets.container_secrets(settings.integrations),
            log_retention=settings.log_retention,
            image_directory=image_directory,
        )
        alarms = Alarms(
            self,
            "Alarms",
            load_balancer=load_balancer.alb,
            target_group=web.target_group,
            table=table,
            threshold_5xx=stage.alarm_5xx_threshold,
            email=settings.alarm_email,
        )

        CfnOutput(self, "PublicUrl", value=public_url)
        CfnOutput(self, "LoadBalancerDns", value=load_balancer.alb.load_balancer_dns_name)
        CfnOutput(self, "TableName", value=table.table_name)
        CfnOutput(self, "ClusterName", value=web.cluster.cluster_name)
        CfnOutput(self, "ServiceName", value=web.service.service_name)
        CfnOutput(self, "LogGroup", value=web.log_group.log_group_name)
        CfnOutput(self, "AlarmTopic", value=alarms.topic.topic_arn)
        CfnOutput(
            self,
            "SecretNames",
            value=" ".join(secrets.name_of(setting) for setting in secrets.by_setting),
        )
