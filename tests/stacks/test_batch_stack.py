"""The batch program declares fleets sized and priced (spot or not) exactly as the config says."""

from __future__ import annotations

import base64
from typing import Any

import pulumi
import pytest

ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"
INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
COMPONENTS = {
    "aws": "cloudbalance:batch:AwsAutoScalingFleet",
    "azure": "cloudbalance:batch:AzureScaleSetFleet",
    "gcp": "cloudbalance:batch:GcpInstanceGroupFleet",
}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey worker"


def fleet(placements: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "ghcr.io/acme/worker:2.0",
        "spot": True,
        "aws": {"instance_type": "c7i.large"},
        "azure": {"vm_size": "Standard_F2s_v2", "ssh_public_key": KEY},
        "gcp": {"machine_type": "c3-standard-4"},
        "placements": placements,
    }
    spec.update(fields)
    return spec


def at(cloud: str, region: str, replicas: int) -> dict[str, Any]:
    return {"cloud": cloud, "region": region, "replicas": replicas}


def declared_replicas(run: Any, cloud: str, name: str) -> int:
    if cloud == "aws":
        group = run.one(ASG, name).inputs
        assert group["minSize"] == group["maxSize"] == group["desiredCapacity"]
        return int(group["desiredCapacity"])
    if cloud == "azure":
        return int(run.one(SCALE_SET, name).inputs["sku"]["capacity"])
    return int(run.one(MIG, name).inputs["targetSize"])


PLACEMENTS = [
    pytest.param(
        [at("aws", "us-east-1", 4), at("azure", "westeurope", 2), at("gcp", "us-central1", 0)],
        id="all-three-gcp-idle",
    ),
    pytest.param([at("gcp", "us-central1", 9), at("gcp", "europe-west4", 3)], id="gcp-two-regions"),
    pytest.param([at("azure", "eastus", 5), at("aws", "eu-central-1", 1)], id="no-gcp"),
]


@pytest.mark.parametrize("placements", PLACEMENTS)
def test_each_placement_is_a_fleet_of_its_replicas_and_nothing_else(
    run_stack: Any, placements: list[dict[str, Any]]
) -> None:
    run = run_stack("batch", {"worker": fleet(placements)})

    for placement in placements:
        name = f"worker-{placement['cloud']}-{placement['region']}"
        assert declared_replicas(run, placement["cloud"], name) == placement["replicas"]
    for cloud, component in COMPONENTS.items():
        assert run.names(component) == {
            f"worker-{p['cloud']}-{p['region']}" for p in placements if p["cloud"] == cloud
        }
    assert {r.inputs["region"] for r in run.of_type(MIG)} == {
        p["region"] for p in placements if p["cloud"] == "gcp"
    }
    assert {r.inputs["location"] for r in run.of_type(SCALE_SET)} == {
        p["region"] for p in placements if p["cloud"] == "azure"
    }
    assert {r.inputs["region"] for r in run.of_type(ASG)} == {
        p["region"] for p in placements if p["cloud"] == "aws"
    }


def test_component_outputs_carry_the_configured_replicas(run_stack: Any) -> None:
    placements = [
        at("aws", "us-east-1", 4),
        at("azure", "westeurope", 2),
        at("gcp", "us-central1", 0),
    ]

    def check(namespace: dict[str, Any]) -> pulumi.Output[Any]:
        parts = namespace["deployed"]["worker"]
        keys = sorted(parts)
        return pulumi.Output.all(*(parts[key].replicas for key in keys)).apply(
            lambda values: _assert_equal(
                dict(zip(keys, values, strict=True)),
                {"aws-us-east-1": 4, "azure-westeurope": 2, "gcp-us-central1": 0},
            )
        )

    run_stack("batch", {"worker": fleet(placements)}, check=check)


def _assert_equal(found: object, expected: object) -> None:
    assert found == expected


ALL_THREE = [at("aws", "us-east-1", 3), at("azure", "westeurope", 2), at("gcp", "us-central1", 1)]


def test_spot_fleets_use_spot_capacity_on_every_cloud(run_stack: Any) -> None:
    run = run_stack("batch", {"worker": fleet(ALL_THREE, spot=True)})

    group = run.one(ASG, "worker-aws-us-east-1").inputs
    assert "launchTemplate" not in group
    assert group["capacityRebalance"] is True
    distribution = group["mixedInstancesPolicy"]["instancesDistribution"]
    assert int(distribution["onDemandBaseCapacity"]) == 0
    assert int(distribution["onDemandPercentageAboveBaseCapacity"]) == 0
    assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    spec = group["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    assert spec["launchTemplateId"] == "worker-aws-us-east-1-id"

    profile = run.one(SCALE_SET, "worker-azure-westeurope").inputs["virtualMachineProfile"]
    assert (profile["priority"], profile["evictionPolicy"]) == ("Spot", "Delete")
    assert profile["billingProfile"] == {"maxPrice": -1}

    scheduling = run.one(INSTANCE_TEMPLATE, "worker-gcp-us-central1").inputs["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["preemptible"] is True
    assert scheduling["automaticRestart"] is False
    assert scheduling["onHostMaintenance"] == "TERMINATE"


def test_on_demand_fleets_use_no_spot_capacity_anywhere(run_stack: Any) -> None:
    run = run_stack("batch", {"worker": fleet(ALL_THREE, spot=False)})

    group = run.one(ASG, "worker-aws-us-east-1").inputs
    assert "mixedInstancesPolicy" not in group
    assert group["launchTemplate"] == {"id": "worker-aws-us-east-1-id", "version": "$Latest"}
    assert "instanceMarketOptions" not in run.one(LAUNCH_TEMPLATE, "worker-aws-us-east-1").inputs

    profile = run.one(SCALE_SET, "worker-azure-westeurope").inputs["virtualMachineProfile"]
    assert profile["priority"] == "Regular"
    assert "evictionPolicy" not in profile

    scheduling = run.one(INSTANCE_TEMPLATE, "worker-gcp-us-central1").inputs["scheduling"]
    assert scheduling["provisioningModel"] == "STANDARD"
    assert scheduling["preemptible"] is False


def test_machine_shapes_and_boot_script_follow_the_config(run_stack: Any) -> None:
    run = run_stack("batch", {"worker": fleet(ALL_THREE)})

    template = run.one(LAUNCH_TEMPLATE, "worker-aws-us-east-1").inputs
    assert template["instanceType"] == "c7i.large"
    assert template["imageId"] == "ami-0al2023"
    script = base64.b64decode(template["userData"]).decode()
    assert "docker run -d --restart always --name worker ghcr.io/acme/worker:2.0" in script
    scale_set = run.one(SCALE_SET, "worker-azure-westeurope").inputs
    assert scale_set["sku"]["name"] == "Standard_F2s_v2"
    os_profile = scale_set["virtualMachineProfile"]["osProfile"]
    assert base64.b64decode(os_profile["customData"]).decode() == script
    assert os_profile["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == KEY
    nic = scale_set["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0]
    assert nic["ipConfigurations"][0]["subnet"] == {"id": "/subnets/workers"}
    instance = run.one(INSTANCE_TEMPLATE, "worker-gcp-us-central1").inputs
    assert instance["machineType"] == "c3-standard-4"
    assert instance["metadataStartupScript"] == script
    versions = run.one(MIG, "worker-gcp-us-central1").inputs["versions"]
    assert versions[0]["instanceTemplate"].startswith("projects/p/global/instanceTemplates/")


def test_custom_startup_script_replaces_the_generated_one(run_stack: Any) -> None:
    custom = "#!/bin/sh\necho custom\n"

    run = run_stack(
        "batch", {"worker": fleet([at("gcp", "us-central1", 1)], startup_script=custom)}
    )

    template = run.one(INSTANCE_TEMPLATE, "worker-gcp-us-central1").inputs
    assert template["metadataStartupScript"] == custom


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp"])
def test_zero_replicas_keeps_the_fleet_declared_and_empty(run_stack: Any, cloud: str) -> None:
    region = {"aws": "us-east-1", "azure": "westeurope", "gcp": "us-central1"}[cloud]

    run = run_stack("batch", {"worker": fleet([at(cloud, region, 0)])})

    assert run.names(COMPONENTS[cloud]) == {f"worker-{cloud}-{region}"}
    assert declared_replicas(run, cloud, f"worker-{cloud}-{region}") == 0


def test_an_azure_placement_without_an_ssh_key_is_refused(run_stack: Any) -> None:
    spec = fleet([at("azure", "westeurope", 1)])
    spec["azure"] = {"vm_size": "Standard_D2s_v5"}

    with pytest.raises(pulumi.RunError, match=r"worker\.azure\.ssh_public_key: required"):
        run_stack("batch", {"worker": spec})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spot": "yes"}, r"worker\.spot: must be true or false"),
        ({"aws": {"instance_type": ""}}, r"worker\.aws\.instance_type"),
        ({"gcp": ["e2"]}, r"worker\.gcp: expected a mapping"),
        ({"placements": [at("gcp", "us-central1", 1.5)]}, r"placements\[0\]\.replicas"),
        ({"placements": "aws"}, r"worker\.placements: expected a list"),
    ],
)
def test_malformed_fleet_config_fails_naming_the_field(
    run_stack: Any, change: dict[str, Any], message: str
) -> None:
    spec = fleet([at("gcp", "us-central1", 1)])
    spec.update(change)

    with pytest.raises(pulumi.RunError, match=message):
        run_stack("batch", {"worker": spec})


def test_empty_workloads_is_refused(run_stack: Any) -> None:
    with pytest.raises(pulumi.RunError, match="expected a non-empty mapping"):
        run_stack("batch", {})
