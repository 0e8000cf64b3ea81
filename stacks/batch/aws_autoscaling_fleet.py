"""The fleet's AWS part: an Auto Scaling group of one launch template, spot when asked.

One component per (workload, region). The group's min, max and desired capacity are all the
placement's replicas (the planner decides the size; nothing else scales it). At zero the group and
its launch template stay, empty. Spot uses a mixed instances policy with no on-demand capacity and
the ``price-capacity-optimized`` allocation strategy, with capacity rebalancing so instances at
risk of interruption are replaced early.

Instances boot Amazon Linux 2023 (the latest AMI, read from the public SSM parameter) in the
region's default VPC subnets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

#: Public SSM parameter holding the latest Amazon Linux 2023 AMI id of each region.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@dataclass(frozen=True)
class AwsAutoScalingFleetArgs:
    """What one region's part of a fleet needs.

    Attributes:
        workload: Workload name (used in names and tags).
        region: AWS region id, e.g. ``us-east-1``.
        instance_type: EC2 instance type, e.g. ``m7i.large``.
        replicas: Instances to run (min = max = desired).
        spot: Use spot capacity only.
        user_data: Boot script, plain text (encoded here).
    """

    workload: str
    region: str
    instance_type: str
    replicas: int
    spot: bool
    user_data: str


class AwsAutoScalingFleet(pulumi.ComponentResource):
    """Launch template and Auto Scaling group.

    Attributes:
        replicas: The group's desired capacity.
        group_name: The Auto Scaling group's name.
    """

    replicas: pulumi.Output[int]
    group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsAutoScalingFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:batch:AwsAutoScalingFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER, region=args.region, opts=invoke)
        vpc = aws.ec2.get_vpc_output(default=True, region=args.region, opts=invoke)
        subnets = aws.ec2.get_subnets_output(
            region=args.region,
            filters=[{"name": "vpc-id", "values": [vpc.id]}],  # type: ignore[list-item]
            opts=invoke,
        )
        template = aws.ec2.LaunchTemplate(
            f"{name}",
            region=args.region,
            image_id=ami.value,
            instance_type=args.instance_type,
            user_data=base64.b64encode(args.user_data.encode()).decode(),
            tag_specifications=[
                {"resource_type": "instance", "tags": {"cloudbalance:workload": args.workload}}
            ],
            opts=child,
        )
        group: dict[str, Any] = {
            "min_size": args.replicas,
            "max_size": args.replicas,
            "desired_capacity": args.replicas,
            "vpc_zone_identifiers": subnets.ids,
            "tags": [
                {
                    "key": "cloudbalance:workload",
                    "value": args.workload,
                    "propagate_at_launch": True,
                }
            ],
        }
        if args.spot:
            group["capacity_rebalance"] = True
            group["mixed_instances_policy"] = {
                "instances_distribution": {
                    "on_demand_base_capacity": 0,
                    "on_demand_percentage_above_base_capacity": 0,
                    "spot_allocation_strategy": "price-capacity-optimized",
                },
                "launch_template": {
                    "launch_template_specification": {
                        "launch_template_id": template.id,
                        "version": "$Latest",
                    }
                },
            }
        else:
            group["launch_template"] = {"id": template.id, "version": "$Latest"}
        asg = aws.autoscaling.Group(f"{name}", region=args.region, **group, opts=child)
        self.group_name = asg.name
        self.replicas = asg.desired_capacity.apply(lambda count: int(count or 0))
        self.register_outputs({"replicas": self.replicas, "group_name": self.group_name})
