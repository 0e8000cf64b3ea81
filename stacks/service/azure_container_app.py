"""The service's Azure part: a Container App in its own managed environment and resource group.

One component per (workload, region). Container Apps cannot pin an exact count, so the scale rule
is ``min_replicas = max_replicas = replicas``. At zero replicas the app is kept with
``min_replicas = 0`` and ``max_replicas = 1`` (Azure's smallest maximum); its weighted record is at
weight 0, so no traffic arrives and the app idles at zero replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure_native


@dataclass(frozen=True)
class AzureContainerAppArgs:
    """What one region's part of a service needs.

    Attributes:
        workload: Workload name (the container app's name within its resource group).
        region: Azure location, e.g. ``westeurope``.
        image: Container image reference.
        cpu: vCPU per replica.
        memory_gib: Memory per replica.
        port: Container port, exposed through the app's HTTPS ingress.
        replicas: Replicas to run (min = max).
        public: External ingress (reachable from the internet) rather than environment-internal.
    """

    workload: str
    region: str
    image: str
    cpu: float
    memory_gib: float
    port: int
    replicas: int
    public: bool = True


def scale_bounds(replicas: int) -> tuple[int, int]:
    """``(min_replicas, max_replicas)`` for a replica count; Azure needs a maximum of at least 1."""
    return replicas, max(1, replicas)


class AzureContainerApp(pulumi.ComponentResource):
    """Resource group, Container Apps environment and the app.

    Attributes:
        endpoint: The app's stable ingress FQDN (the target of a weighted record).
        replicas: The replicas the scale rule pins (its ``min_replicas``).
    """

    endpoint: pulumi.Output[str]
    replicas: pulumi.Output[int]

    def __init__(
        self, name: str, args: AzureContainerAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:service:AzureContainerApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"cloudbalance-workload": args.workload}
        group = azure_native.resources.ResourceGroup(
            f"{name}", location=args.region, tags=tags, opts=child
        )
        environment = azure_native.app.ManagedEnvironment(
            f"{name}",
            environment_name=f"{args.workload}-env",  # fits Azure's limit; unique in its group
            resource_group_name=group.name,
            location=args.region,
            tags=tags,
            opts=child,
        )
        low, high = scale_bounds(args.replicas)
        app = azure_native.app.ContainerApp(
            f"{name}",
            container_app_name=args.workload,
            resource_group_name=group.name,
            location=args.region,
            managed_environment_id=environment.id,
            configuration={
                "ingress": {"external": args.public, "target_port": args.port},
            },
            template={
                "containers": [
                    {
                        "name": args.workload,
                        "image": args.image,
                        "resources": {"cpu": args.cpu, "memory": f"{args.memory_gib:g}Gi"},
                    }
                ],
                "scale": {"min_replicas": low, "max_replicas": high},
            },
            tags=tags,
            opts=child,
        )
        self.endpoint = app.configuration.apply(_ingress_fqdn)
        self.replicas = app.template.apply(
            lambda template: (
                int(template.scale.min_replicas or 0) if template and template.scale else 0
            )
        )
        self.register_outputs({"endpoint": self.endpoint, "replicas": self.replicas})


def _ingress_fqdn(configuration: Any) -> str:
    ingress = getattr(configuration, "ingress", None) if configuration else None
    return str(getattr(ingress, "fqdn", None) or "")
