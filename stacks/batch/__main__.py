"""Declare each worker fleet on every cloud its placements list, sized to the replicas."""

from __future__ import annotations

import pulumi
from aws_autoscaling_fleet import AwsAutoScalingFleet, AwsAutoScalingFleetArgs
from azure_scale_set_fleet import AzureScaleSetFleet, AzureScaleSetFleetArgs
from fleet_config import FleetWorkload, load_fleets
from gcp_instance_group_fleet import GcpInstanceGroupFleet, GcpInstanceGroupFleetArgs

Part = AwsAutoScalingFleet | AzureScaleSetFleet | GcpInstanceGroupFleet


def declare(fleet: FleetWorkload) -> dict[str, Part]:
    """One component per placement, keyed ``cloud-region``."""
    parts: dict[str, Part] = {}
    for placement in fleet.placements:
        name = f"{fleet.name}-{placement.key}"
        if placement.cloud == "aws":
            parts[placement.key] = AwsAutoScalingFleet(
                name,
                AwsAutoScalingFleetArgs(
                    workload=fleet.name,
                    region=placement.region,
                    instance_type=fleet.aws_instance_type,
                    replicas=placement.replicas,
                    spot=fleet.spot,
                    user_data=fleet.startup_script,
                ),
            )
        elif placement.cloud == "azure":
            assert fleet.azure_ssh_public_key is not None  # checked by load_fleets
            parts[placement.key] = AzureScaleSetFleet(
                name,
                AzureScaleSetFleetArgs(
                    workload=fleet.name,
                    region=placement.region,
                    vm_size=fleet.azure_vm_size,
                    replicas=placement.replicas,
                    spot=fleet.spot,
                    admin_username=fleet.azure_admin_username,
                    ssh_public_key=fleet.azure_ssh_public_key,
                    custom_data=fleet.startup_script,
                ),
            )
        else:
            parts[placement.key] = GcpInstanceGroupFleet(
                name,
                GcpInstanceGroupFleetArgs(
                    workload=fleet.name,
                    region=placement.region,
                    machine_type=fleet.gcp_machine_type,
                    replicas=placement.replicas,
                    spot=fleet.spot,
                    startup_script=fleet.startup_script,
                ),
            )
    return parts


fleets = load_fleets(pulumi.Config("cloudbalance").require_object("workloads"))
deployed = {fleet.name: declare(fleet) for fleet in fleets}
for fleet_name, parts in deployed.items():
    for key, part in parts.items():
        pulumi.export(f"{fleet_name}/{key}/replicas", part.replicas)
