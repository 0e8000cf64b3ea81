"""The fleet's Azure part: a Linux VM scale set in its own resource group and network.

One component per (workload, region). The scale set's capacity (``sku.capacity``) is the
placement's replicas; at zero the scale set, network and resource group stay, empty. Spot sets
``priority: Spot`` with ``eviction_policy: Delete`` and ``max_price: -1`` (pay up to the on-demand
price, so evictions happen for capacity only, never for price).

Instances boot Ubuntu 24.04 LTS; the boot script is passed as cloud-init custom data.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native.compute import StorageAccountTypes

UBUNTU: azure_native.compute.ImageReferenceArgsDict = {
    "publisher": "Canonical",
    "offer": "ubuntu-24_04-lts",
    "sku": "server",
    "version": "latest",
}


@dataclass(frozen=True)
class AzureScaleSetFleetArgs:
    """What one region's part of a fleet needs.

    Attributes:
        workload: Workload name (used in names and tags).
        region: Azure location, e.g. ``westeurope``.
        vm_size: VM size, e.g. ``Standard_D2s_v5``.
        replicas: Instances to run (the scale set's capacity).
        spot: Use Spot priority with eviction by deletion.
        admin_username: Linux administrator account.
        ssh_public_key: Public key allowed to log in as the administrator.
        custom_data: Boot script, plain text (encoded here).
        address_space: The scale set's virtual network range.
    """

    workload: str
    region: str
    vm_size: str
    replicas: int
    spot: bool
    admin_username: str
    ssh_public_key: str
    custom_data: str
    address_space: str = "10.42.0.0/16"


def first_subnet(address_space: str) -> str:
    """The first /20 (or the whole range, when smaller) of the network, for the workers."""
    network = ipaddress.ip_network(address_space)
    prefix = max(network.prefixlen, min(20, network.max_prefixlen))
    return str(next(network.subnets(new_prefix=prefix)))


class AzureScaleSetFleet(pulumi.ComponentResource):
    """Resource group, virtual network and the VM scale set.

    Attributes:
        replicas: The scale set's capacity.
    """

    replicas: pulumi.Output[int]

    def __init__(
        self, name: str, args: AzureScaleSetFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:batch:AzureScaleSetFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"cloudbalance-workload": args.workload}
        group = azure_native.resources.ResourceGroup(
            f"{name}", location=args.region, tags=tags, opts=child
        )
        network = azure_native.network.VirtualNetwork(
            f"{name}",
            resource_group_name=group.name,
            location=args.region,
            address_space={"address_prefixes": [args.address_space]},
            subnets=[{"name": "workers", "address_prefix": first_subnet(args.address_space)}],
            tags=tags,
            opts=child,
        )
        subnet_id = network.subnets.apply(lambda subnets: subnets[0].id if subnets else "")
        profile: azure_native.compute.VirtualMachineScaleSetVMProfileArgsDict = {
            "os_profile": {
                "computer_name_prefix": args.workload[:9],
                "admin_username": args.admin_username,
                "custom_data": base64.b64encode(args.custom_data.encode()).decode(),
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "ssh": {
                        "public_keys": [
                            {
                                "path": f"/home/{args.admin_username}/.ssh/authorized_keys",
                                "key_data": args.ssh_public_key,
                            }
                        ]
                    },
                },
            },
            "storage_profile": {
                "image_reference": UBUNTU,
                "os_disk": {
                    "create_option": azure_native.compute.DiskCreateOptionTypes.FROM_IMAGE,
                    "caching": azure_native.compute.CachingTypes.READ_WRITE,
                    "managed_disk": {"storage_account_type": StorageAccountTypes.STANDARD_LRS},
                },
            },
            "network_profile": {
                "network_interface_configurations": [
                    {
                        "name": "primary",
                        "primary": True,
                        "ip_configurations": [{"name": "primary", "subnet": {"id": subnet_id}}],
                    }
                ]
            },
        }
        if args.spot:
            profile["priority"] = "Spot"
            profile["eviction_policy"] = "Delete"
            profile["billing_profile"] = {"max_price": -1}
        else:
            profile["priority"] = "Regular"
        scale_set = azure_native.compute.VirtualMachineScaleSet(
            f"{name}",
            resource_group_name=group.name,
            location=args.region,
            orchestration_mode="Uniform",
            overprovision=False,
            sku=azure_native.compute.SkuArgs(
                name=args.vm_size, tier="Standard", capacity=args.replicas
            ),
            upgrade_policy=azure_native.compute.UpgradePolicyArgs(
                mode=azure_native.compute.UpgradeMode.MANUAL
            ),
            virtual_machine_profile=profile,
            tags=tags,
            opts=child,
        )
        self.replicas = scale_set.sku.apply(lambda sku: int(sku.capacity or 0) if sku else 0)
        self.register_outputs({"replicas": self.replicas})
