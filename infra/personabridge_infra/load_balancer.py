"""The internet-facing Application Load Balancer.

With a certificate ARN: HTTPS on 443 and a permanent redirect from HTTP on 80. Without:
HTTP on 80 only (enough to try a dev stack; Telegram webhooks need HTTPS). Either way the
app's ``/metrics`` is not served to the internet (the app's docs ask for that).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

PRIVATE_PATHS = ("/metrics", "/metrics/*")


class PublicLoadBalancer(Construct):
    """The ALB and its one listener that forwards to the app (``listener``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        certificate_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alb = elbv2.ApplicationLoadBalancer(
            self, "Alb", vpc=vpc, internet_facing=True, drop_invalid_header_fields=True
        )
        self.https = certificate_arn is not None
        if certificate_arn is not None:
            self.listener = self.alb.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            )
            self.alb.add_redirect(source_port=80, target_port=443)
        else:
            self.listener = self.alb.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP
            )
        self.listener.add_action(
            "HideMetrics",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(list(PRIVATE_PATHS))],
            action=elbv2.ListenerAction.fixed_response(
                404, content_type="text/plain", message_body="Not Found"
            ),
        )

    @property
    def default_url(self) -> str:
        """The load balancer's own address (a token until deploy)."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{self.alb.load_balancer_dns_name}"
