"""The fleet's Google Cloud part: a regional managed instance group of one instance template.

One component per (workload, region). The group's ``target_size`` is the placement's replicas; at
zero the group and template stay, empty. Spot sets ``provisioning_model: SPOT`` (with the
settings Compute Engine requires of it: preemptible, no automatic restart, terminate on host
maintenance) and deletes instances when they are preempted so the group re-creates them.

Instances boot Debian 12 on the project's ``default`` network; the boot script is the instance's
``startup-script``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

DEBIAN = "debian-cloud/debian-12"


@dataclass(frozen=True)
class GcpInstanceGroupFleetArgs:
    """What one region's part of a fleet needs.

    Attributes:
        workload: Workload name (the instances' base name).
        region: Google Cloud region, e.g. ``us-central1``.
        machine_type: Machine type, e.g. ``e2-standard-2``.
        replicas: Instances to run (the group's target size).
        spot: Use Spot VMs.
        startup_script: Boot script.
        network: VPC network the instances join.
    """

    workload: str
    region: str
    machine_type: str
    replicas: int
    spot: bool
    startup_script: str
    network: str = "default"


def scheduling(spot: bool) -> gcp.compute.InstanceTemplateSchedulingArgsDict:
    """Instance scheduling for spot or standard capacity (Compute Engine's required pairings)."""
    if spot:
        return {
            "provisioning_model": "SPOT",
            "preemptible": True,
            "automatic_restart": False,
            "on_host_maintenance": "TERMINATE",
            "instance_termination_action": "DELETE",
        }
    return {
        "provisioning_model": "STANDARD",
        "preemptible": False,
        "automatic_restart": True,
        "on_host_maintenance": "MIGRATE",
    }


class GcpInstanceGroupFleet(pulumi.ComponentResource):
    """Instance template and regional managed instance group.

    Attributes:
        replicas: The group's target size.
    """

    replicas: pulumi.Output[int]

    def __init__(
        self, name: str, args: GcpInstanceGroupFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:batch:GcpInstanceGroupFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {"cloudbalance-workload": args.workload}
        template = gcp.compute.InstanceTemplate(
            f"{name}",
            name_prefix=f"{args.workload}-",
            region=args.region,
            machine_type=args.machine_type,
            disks=[
                gcp.compute.InstanceTemplateDiskArgs(
                    boot=True, auto_delete=True, source_image=DEBIAN
                )
            ],
            network_interfaces=[
                gcp.compute.InstanceTemplateNetworkInterfaceArgs(
                    network=args.network,
                    access_configs=[gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs()],
                )
            ],
            metadata_startup_script=args.startup_script,
            scheduling=scheduling(args.spot),
            labels=labels,
            opts=child,
        )
        group = gcp.compute.RegionInstanceGroupManager(
            f"{name}",
            region=args.region,
            base_instance_name=args.workload,
            versions=[{"name": "primary", "instance_template": template.self_link_unique}],
            target_size=args.replicas,
            opts=child,
        )
        self.replicas = group.target_size.apply(lambda size: int(size or 0))
        self.register_outputs({"replicas": self.replicas})
