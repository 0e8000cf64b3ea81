"""The service's Google Cloud part: a Cloud Run (v2) service with manual scaling.

One component per (workload, region). Cloud Run's service-level manual scaling runs exactly
``manual_instance_count`` instances whatever the traffic, which is what a placement means; zero
keeps the service (and its URL and weighted record at weight 0) with no instance running.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp


@dataclass(frozen=True)
class GcpCloudRunServiceArgs:
    """What one region's part of a service needs.

    Attributes:
        workload: Workload name (the Cloud Run service's name).
        region: Google Cloud region, e.g. ``us-central1``.
        image: Container image reference.
        cpu: vCPU per instance.
        memory_gib: Memory per instance.
        port: Container port Cloud Run sends requests to.
        replicas: Instances to run (manual scaling).
        public: Let anyone invoke it (``allUsers`` gets ``roles/run.invoker``).
    """

    workload: str
    region: str
    image: str
    cpu: float
    memory_gib: float
    port: int
    replicas: int
    public: bool = True


def cpu_limit(cpu: float) -> str:
    """Cloud Run's CPU limit text: millicores below one vCPU (``500m``), whole numbers above."""
    return f"{int(cpu * 1000)}m" if cpu < 1 else f"{cpu:g}"


class GcpCloudRunService(pulumi.ComponentResource):
    """A Cloud Run service, manually scaled to the placement's replicas.

    Attributes:
        endpoint: The service's host name, without scheme (the target of a weighted record).
        replicas: The manual instance count.
    """

    endpoint: pulumi.Output[str]
    replicas: pulumi.Output[int]

    def __init__(
        self, name: str, args: GcpCloudRunServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:service:GcpCloudRunService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        service = gcp.cloudrunv2.Service(
            f"{name}",
            name=args.workload,
            location=args.region,
            deletion_protection=False,
            ingress="INGRESS_TRAFFIC_ALL",
            scaling={"scaling_mode": "MANUAL", "manual_instance_count": args.replicas},
            template={
                "containers": [
                    {
                        "image": args.image,
                        "ports": {"container_port": args.port},
                        "resources": {
                            "limits": {
                                "cpu": cpu_limit(args.cpu),
                                "memory": f"{int(args.memory_gib * 1024)}Mi",
                            }
                        },
                    }
                ],
            },
            labels={"cloudbalance-workload": args.workload},
            opts=child,
        )
        if args.public:
            gcp.cloudrunv2.ServiceIamMember(
                f"{name}-invoker",
                name=service.name,
                location=args.region,
                role="roles/run.invoker",
                member="allUsers",
                opts=child,
            )
        self.endpoint = service.uri.apply(lambda uri: (uri or "").removeprefix("https://"))
        self.replicas = service.scaling.apply(
            lambda scaling: int(scaling.manual_instance_count or 0) if scaling else 0
        )
        self.register_outputs({"endpoint": self.endpoint, "replicas": self.replicas})
