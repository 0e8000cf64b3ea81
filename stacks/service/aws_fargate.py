"""The service's AWS part: an ECS service on Fargate behind an Application Load Balancer.

One component per (workload, region). The ECS service's ``desired_count`` is the placement's
replicas; at zero the service, cluster and load balancer stay (the load balancer's DNS name keeps
its weighted record at weight 0), so moving load back is a scale-up, not a rebuild.

Networking uses the region's default VPC and its subnets with public IPs on the tasks, which is
enough to pull public images and serve through the load balancer; for private subnets or an
existing VPC, change :meth:`AwsFargateService._network`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: AWS-managed policy that lets ECS pull images and write logs for the task.
EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
#: TLS 1.3 with 1.2 fallback, AWS's recommended policy for HTTPS listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass(frozen=True)
class AwsFargateServiceArgs:
    """What one region's part of a service needs.

    Attributes:
        workload: Workload name (used in names and tags).
        region: AWS region id, e.g. ``us-east-1``.
        image: Container image reference.
        cpu: vCPU per task (a Fargate size: 0.25, 0.5, 1, 2, 4, 8, 16).
        memory_gib: Memory per task.
        port: Container port, also the target group's port.
        replicas: ECS ``desired_count``.
        spot: Run on the ``FARGATE_SPOT`` capacity provider instead of ``FARGATE``.
        certificate_arn: ACM certificate for an HTTPS listener on 443 (the other clouds serve
            HTTPS, so a weighted name needs it here too); without it, HTTP on 80 only.
    """

    workload: str
    region: str
    image: str
    cpu: float
    memory_gib: float
    port: int
    replicas: int
    spot: bool = False
    certificate_arn: str | None = None


def balancer_name(workload: str, region: str) -> str:
    """Logical name of the load balancer and target group: ``<workload>-<6 hex of region>``.

    AWS allows them 32 characters and Pulumi appends 8 (``-`` and 7 random) to the logical name,
    so ``checkout-aws-ap-southeast-2`` would not fit; a digest of the region keeps the name short,
    stable and unique per region (the workload and region are also in the tags).
    """
    return f"{workload}-{hashlib.sha256(region.encode()).hexdigest()[:6]}"


class AwsFargateService(pulumi.ComponentResource):
    """ECS cluster, task definition and service on Fargate, behind a public ALB.

    Attributes:
        endpoint: The load balancer's DNS name (the target of a weighted record).
        replicas: The service's desired count.
    """

    endpoint: pulumi.Output[str]
    replicas: pulumi.Output[int]

    def __init__(
        self, name: str, args: AwsFargateServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:service:AwsFargateService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = args.region
        tags = {"cloudbalance:workload": args.workload, "cloudbalance:region": region}
        vpc_id, subnet_ids = self._network(region)
        listener_ports = [80, 443] if args.certificate_arn else [80]
        lb_name = balancer_name(args.workload, region)

        lb_sg = aws.ec2.SecurityGroup(
            f"{name}-lb",
            region=region,
            vpc_id=vpc_id,
            description=f"{args.workload} load balancer",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": port,
                    "to_port": port,
                    "cidr_blocks": ["0.0.0.0/0"],
                }
                for port in listener_ports
            ],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=tags,
            opts=child,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task",
            region=region,
            vpc_id=vpc_id,
            description=f"{args.workload} tasks",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": args.port,
                    "to_port": args.port,
                    "security_groups": [lb_sg.id],
                }
            ],
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags=tags,
            opts=child,
        )
        balancer = aws.lb.LoadBalancer(
            lb_name,
            region=region,
            load_balancer_type="application",
            security_groups=[lb_sg.id],
            subnets=subnet_ids,
            tags=tags,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            lb_name,
            region=region,
            port=args.port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=vpc_id,
            tags=tags,
            opts=child,
        )
        forward = [
            aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
        ]
        listeners = [
            aws.lb.Listener(
                f"{name}",
                region=region,
                load_balancer_arn=balancer.arn,
                port=80,
                protocol="HTTP",
                default_actions=forward,
                opts=child,
            )
        ]
        if args.certificate_arn:
            listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    region=region,
                    load_balancer_arn=balancer.arn,
                    port=443,
                    protocol="HTTPS",
                    certificate_arn=args.certificate_arn,
                    ssl_policy=TLS_POLICY,
                    default_actions=forward,
                    opts=child,
                )
            )
        cluster = aws.ecs.Cluster(f"{name}", region=region, tags=tags, opts=child)
        capacity = aws.ecs.ClusterCapacityProviders(
            f"{name}",
            region=region,
            cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-exec",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-exec", role=role.name, policy_arn=EXECUTION_POLICY, opts=child
        )
        task = aws.ecs.TaskDefinition(
            f"{name}",
            region=region,
            family=f"{args.workload}-{region}",
            cpu=str(int(args.cpu * 1024)),
            memory=str(int(args.memory_gib * 1024)),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=role.arn,
            container_definitions=json.dumps(
                [
                    {
                        "name": args.workload,
                        "image": args.image,
                        "essential": True,
                        "portMappings": [{"containerPort": args.port, "protocol": "tcp"}],
                    }
                ]
            ),
            tags=tags,
            opts=child,
        )
        service = aws.ecs.Service(
            f"{name}",
            region=region,
            cluster=cluster.arn,
            task_definition=task.arn,
            desired_count=args.replicas,
            capacity_provider_strategies=[
                {"capacity_provider": "FARGATE_SPOT" if args.spot else "FARGATE", "weight": 1}
            ],
            network_configuration={
                "subnets": subnet_ids,
                "security_groups": [task_sg.id],
                "assign_public_ip": True,
            },
            load_balancers=[
                {
                    "target_group_arn": target_group.arn,
                    "container_name": args.workload,
                    "container_port": args.port,
                }
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*listeners, capacity]),
        )
        self.endpoint = balancer.dns_name
        self.replicas = service.desired_count.apply(lambda count: int(count or 0))
        self.register_outputs({"endpoint": self.endpoint, "replicas": self.replicas})

    def _network(self, region: str) -> tuple[pulumi.Output[str], pulumi.Output[list[str]]]:
        """The default VPC of ``region`` and its subnets."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        vpc = aws.ec2.get_vpc_output(default=True, region=region, opts=invoke)
        subnets = aws.ec2.get_subnets_output(
            region=region,
            filters=[{"name": "vpc-id", "values": [vpc.id]}],  # type: ignore[list-item]
            opts=invoke,
        )
        return vpc.id, subnets.ids
