"""The VPC: two availability zones, public subnets for the load balancer.

Without NAT gateways (dev) the tasks run in the public subnets with public IPs; their
security group still admits only the load balancer. With NAT gateways (prod) they run in
private subnets. Either way DynamoDB traffic takes a gateway endpoint (free), not the
internet or the NAT.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct


class Network(Construct):
    """The VPC and where the tasks go in it."""

    def __init__(self, scope: Construct, construct_id: str, *, nat_gateways: int) -> None:
        super().__init__(scope, construct_id)
        subnets = [ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)]
        if nat_gateways:
            subnets.append(
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            )
        self.vpc = ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=nat_gateways, subnet_configuration=subnets
        )
        self.vpc.add_gateway_endpoint("DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
        self.tasks_public = nat_gateways == 0
        self.task_subnets = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PUBLIC
            if self.tasks_public
            else ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
