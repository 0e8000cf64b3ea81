"""Declare each service workload on every cloud its placements list, sized to the replicas."""

from __future__ import annotations

import pulumi
from aws_fargate import AwsFargateService, AwsFargateServiceArgs
from azure_container_app import AzureContainerApp, AzureContainerAppArgs
from gcp_cloud_run import GcpCloudRunService, GcpCloudRunServiceArgs
from service_config import ServiceWorkload, load_services
from weighted_dns import WeightedDns, WeightedDnsArgs, WeightedTarget

Part = AwsFargateService | AzureContainerApp | GcpCloudRunService


def declare(workload: ServiceWorkload) -> dict[str, Part]:
    """One component per placement, keyed ``cloud-region``; a weighted record set if asked."""
    parts: dict[str, Part] = {}
    for placement in workload.placements:
        name = f"{workload.name}-{placement.key}"
        if placement.cloud == "aws":
            parts[placement.key] = AwsFargateService(
                name,
                AwsFargateServiceArgs(
                    workload=workload.name,
                    region=placement.region,
                    image=workload.image,
                    cpu=workload.cpu,
                    memory_gib=workload.memory_gib,
                    port=workload.port,
                    replicas=placement.replicas,
                    spot=workload.spot,
                    certificate_arn=workload.aws_certificate_arn,
                ),
            )
        elif placement.cloud == "azure":
            parts[placement.key] = AzureContainerApp(
                name,
                AzureContainerAppArgs(
                    workload=workload.name,
                    region=placement.region,
                    image=workload.image,
                    cpu=workload.cpu,
                    memory_gib=workload.memory_gib,
                    port=workload.port,
                    replicas=placement.replicas,
                    public=workload.public,
                ),
            )
        else:
            parts[placement.key] = GcpCloudRunService(
                name,
                GcpCloudRunServiceArgs(
                    workload=workload.name,
                    region=placement.region,
                    image=workload.image,
                    cpu=workload.cpu,
                    memory_gib=workload.memory_gib,
                    port=workload.port,
                    replicas=placement.replicas,
                    public=workload.public,
                ),
            )
    if workload.dns is not None and workload.placements:
        targets = [
            WeightedTarget(p.key, parts[p.key].endpoint, p.replicas) for p in workload.placements
        ]
        WeightedDns(
            f"{workload.name}-dns",
            WeightedDnsArgs(workload.dns.zone_id, workload.dns.name, targets, workload.dns.ttl),
        )
    return parts


services = load_services(pulumi.Config("cloudbalance").require_object("workloads"))
deployed = {workload.name: declare(workload) for workload in services}
for workload_name, parts in deployed.items():
    for key, part in parts.items():
        pulumi.export(f"{workload_name}/{key}/endpoint", part.endpoint)
        pulumi.export(f"{workload_name}/{key}/replicas", part.replicas)
