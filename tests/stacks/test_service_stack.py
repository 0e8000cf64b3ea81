"""The service program declares, on each placed cloud, exactly the replicas the config gives."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi
import pytest

ECS_SERVICE = "aws:ecs/service:Service"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
ALB = "aws:lb/loadBalancer:LoadBalancer"
CONTAINER_APP = "azure-native:app:ContainerApp"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
RECORD = "aws:route53/record:Record"
COMPONENTS = {
    "aws": "cloudbalance:service:AwsFargateService",
    "azure": "cloudbalance:service:AzureContainerApp",
    "gcp": "cloudbalance:service:GcpCloudRunService",
}


def balancer(workload: str, region: str) -> str:
    return f"{workload}-{hashlib.sha256(region.encode()).hexdigest()[:6]}"


def service(placements: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    spec = {
        "image": "ghcr.io/acme/checkout:1.4",
        "cpu": 0.5,
        "memory_gib": 1,
        "port": 8080,
        "spot": False,
        "placements": placements,
    }
    spec.update(fields)
    return spec


def at(cloud: str, region: str, replicas: int) -> dict[str, Any]:
    return {"cloud": cloud, "region": region, "replicas": replicas}


def declared_replicas(run: Any, cloud: str, name: str) -> int:
    """The replica count the resource of ``cloud`` named ``name`` was declared with."""
    if cloud == "aws":
        return int(run.one(ECS_SERVICE, name).inputs["desiredCount"])
    if cloud == "gcp":
        scaling = run.one(CLOUD_RUN, name).inputs["scaling"]
        assert scaling["scalingMode"] == "MANUAL"
        return int(scaling["manualInstanceCount"])
    scale = run.one(CONTAINER_APP, name).inputs["template"]["scale"]
    assert int(scale["maxReplicas"]) == max(1, int(scale["minReplicas"]))
    return int(scale["minReplicas"])


PLACEMENTS = [
    pytest.param(
        [at("aws", "us-east-1", 6), at("gcp", "us-central1", 2), at("azure", "westeurope", 0)],
        id="aws-heavy-azure-idle",
    ),
    pytest.param(
        [at("azure", "westeurope", 3), at("gcp", "europe-west1", 5)],
        id="no-aws",
    ),
    pytest.param(
        [at("aws", "us-east-1", 4), at("aws", "eu-west-1", 1), at("azure", "eastus", 7)],
        id="two-aws-regions",
    ),
    pytest.param([at("gcp", "us-central1", 1)], id="gcp-only"),
]


@pytest.mark.parametrize("placements", PLACEMENTS)
def test_each_placement_is_declared_with_its_replicas_and_nothing_else(
    run_stack: Any, placements: list[dict[str, Any]]
) -> None:
    run = run_stack("service", {"checkout": service(placements)})

    for placement in placements:
        name = f"checkout-{placement['cloud']}-{placement['region']}"
        assert declared_replicas(run, placement["cloud"], name) == placement["replicas"]
    for cloud, component in COMPONENTS.items():
        expected = {
            f"checkout-{p['cloud']}-{p['region']}" for p in placements if p["cloud"] == cloud
        }
        assert run.names(component) == expected
    aws_regions = {p["region"] for p in placements if p["cloud"] == "aws"}
    assert {r.inputs["region"] for r in run.of_type(ECS_SERVICE)} == aws_regions
    assert {r.inputs["location"] for r in run.of_type(CLOUD_RUN)} == {
        p["region"] for p in placements if p["cloud"] == "gcp"
    }
    assert {r.inputs["location"] for r in run.of_type(CONTAINER_APP)} == {
        p["region"] for p in placements if p["cloud"] == "azure"
    }


def test_component_outputs_carry_the_configured_replicas(run_stack: Any) -> None:
    placements = [
        at("aws", "us-east-1", 6),
        at("gcp", "us-central1", 2),
        at("azure", "westeurope", 0),
    ]

    def check(namespace: dict[str, Any]) -> pulumi.Output[Any]:
        parts = namespace["deployed"]["checkout"]
        keys = sorted(parts)

        def assert_replicas(values: list[int]) -> None:
            assert dict(zip(keys, values, strict=True)) == {
                "aws-us-east-1": 6,
                "azure-westeurope": 0,
                "gcp-us-central1": 2,
            }

        return pulumi.Output.all(*(parts[key].replicas for key in keys)).apply(assert_replicas)

    run_stack("service", {"checkout": service(placements)}, check=check)


def test_weighted_records_point_at_each_cloud_with_weight_equal_to_replicas(
    run_stack: Any,
) -> None:
    placements = [
        at("aws", "us-east-1", 6),
        at("gcp", "us-central1", 2),
        at("azure", "westeurope", 0),
    ]
    dns = {"zone_id": "Z0EXAMPLE", "name": "checkout.example.com", "ttl": 30}

    run = run_stack("service", {"checkout": service(placements, dns=dns)})

    records = {r.inputs["setIdentifier"]: r.inputs for r in run.of_type(RECORD)}
    assert {key: int(r["weightedRoutingPolicies"][0]["weight"]) for key, r in records.items()} == {
        "aws-us-east-1": 6,
        "gcp-us-central1": 2,
        "azure-westeurope": 0,
    }
    assert records["aws-us-east-1"]["records"] == [
        f"{balancer('checkout', 'us-east-1')}.elb.amazonaws.com"
    ]
    assert records["gcp-us-central1"]["records"] == ["checkout-gcp-us-central1.a.run.app"]
    assert records["azure-westeurope"]["records"] == [
        "checkout-azure-westeurope.azurecontainerapps.io"
    ]
    for record in records.values():
        assert record["zoneId"] == "Z0EXAMPLE"
        assert record["name"] == "checkout.example.com"
        assert record["type"] == "CNAME"
        assert int(record["ttl"]) == 30


def test_without_dns_no_record_is_declared(run_stack: Any) -> None:
    run = run_stack("service", {"checkout": service([at("aws", "us-east-1", 2)])})

    assert run.of_type(RECORD) == []


@pytest.mark.parametrize(("spot", "provider"), [(True, "FARGATE_SPOT"), (False, "FARGATE")])
def test_spot_selects_the_fargate_spot_capacity_provider(
    run_stack: Any, spot: bool, provider: str
) -> None:
    run = run_stack("service", {"checkout": service([at("aws", "us-east-1", 3)], spot=spot)})

    strategies = run.one(ECS_SERVICE, "checkout-aws-us-east-1").inputs["capacityProviderStrategies"]
    assert [s["capacityProvider"] for s in strategies] == [provider]


def test_task_size_image_and_port_follow_the_config(run_stack: Any) -> None:
    spec = service([at("aws", "us-east-1", 1), at("gcp", "us-central1", 1)], cpu=1, memory_gib=2)
    spec["port"] = 9000

    run = run_stack("service", {"checkout": spec})

    task = run.one(TASK, "checkout-aws-us-east-1").inputs
    assert (task["cpu"], task["memory"]) == ("1024", "2048")
    assert '"containerPort": 9000' in task["containerDefinitions"]
    container = run.one(CLOUD_RUN, "checkout-gcp-us-central1").inputs["template"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2048Mi"}
    assert int(container["ports"]["containerPort"]) == 9000


def test_zero_replicas_keeps_each_clouds_part_scaled_to_nothing(run_stack: Any) -> None:
    placements = [
        at("aws", "us-east-1", 0),
        at("gcp", "us-central1", 0),
        at("azure", "westeurope", 0),
    ]

    run = run_stack("service", {"checkout": service(placements)})

    assert declared_replicas(run, "aws", "checkout-aws-us-east-1") == 0
    assert declared_replicas(run, "gcp", "checkout-gcp-us-central1") == 0
    assert declared_replicas(run, "azure", "checkout-azure-westeurope") == 0
    assert run.names(ALB) == {balancer("checkout", "us-east-1")}


def test_private_service_gets_no_public_invoker(run_stack: Any) -> None:
    placements = [at("gcp", "us-central1", 1), at("azure", "westeurope", 1)]

    run = run_stack("service", {"checkout": service(placements, public=False)})

    assert run.of_type(INVOKER) == []
    app = run.one(CONTAINER_APP, "checkout-azure-westeurope").inputs
    assert app["configuration"]["ingress"]["external"] is False


def test_several_workloads_are_declared_independently(run_stack: Any) -> None:
    workloads = {
        "checkout": service([at("aws", "us-east-1", 2)]),
        "search": service([at("gcp", "us-central1", 4)], image="ghcr.io/acme/search:2"),
    }

    run = run_stack("service", workloads)

    assert run.names(COMPONENTS["aws"]) == {"checkout-aws-us-east-1"}
    assert run.names(COMPONENTS["gcp"]) == {"search-gcp-us-central1"}
    assert declared_replicas(run, "gcp", "search-gcp-us-central1") == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cpu": 0.3}, "cloudbalance:workloads.checkout.cpu: must be one of"),
        ({"image": ""}, "cloudbalance:workloads.checkout.image"),
        ({"port": 70000}, "cloudbalance:workloads.checkout.port"),
        (
            {"placements": [at("aws", "us-east-1", -1)]},
            "checkout.placements[0].replicas: must be a whole number >= 0",
        ),
        (
            {"placements": [at("oracle", "us-ashburn-1", 1)]},
            "checkout.placements[0].cloud: must be one of aws, azure, gcp",
        ),
        (
            {"placements": [at("aws", "us-east-1", 1), at("aws", "us-east-1", 2)]},
            "checkout.placements[1]: aws us-east-1 is listed twice",
        ),
        ({"dns": {"name": "x.example.com"}}, "checkout.dns.zone_id"),
    ],
)
def test_malformed_config_fails_naming_the_workload_and_field(
    run_stack: Any, change: dict[str, Any], message: str
) -> None:
    spec = service([at("aws", "us-east-1", 1)])
    spec.update(change)

    with pytest.raises(pulumi.RunError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_stack("service", {"checkout": spec})


def test_workload_name_unusable_as_a_cloud_resource_name_is_refused(run_stack: Any) -> None:
    with pytest.raises(pulumi.RunError, match=r"Checkout_API\.name"):
        run_stack("service", {"Checkout_API": service([at("aws", "us-east-1", 1)])})


LISTENER = "aws:lb/listener:Listener"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"


def test_a_certificate_adds_an_https_listener_and_opens_443(run_stack: Any) -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"

    run = run_stack(
        "service", {"checkout": service([at("aws", "us-east-1", 2)], aws_certificate_arn=arn)}
    )

    listeners = {int(r.inputs["port"]): r.inputs for r in run.of_type(LISTENER)}
    assert sorted(listeners) == [80, 443]
    assert listeners[443]["protocol"] == "HTTPS"
    assert listeners[443]["certificateArn"] == arn
    ingress = run.one(SECURITY_GROUP, "checkout-aws-us-east-1-lb").inputs["ingress"]
    assert sorted(int(rule["fromPort"]) for rule in ingress) == [80, 443]


def test_without_a_certificate_the_load_balancer_serves_http_only(run_stack: Any) -> None:
    run = run_stack("service", {"checkout": service([at("aws", "us-east-1", 2)])})

    assert [int(r.inputs["port"]) for r in run.of_type(LISTENER)] == [80]
    ingress = run.one(SECURITY_GROUP, "checkout-aws-us-east-1-lb").inputs["ingress"]
    assert [int(rule["fromPort"]) for rule in ingress] == [80]


TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ENVIRONMENT = "azure-native:app:ManagedEnvironment"


def test_names_with_length_limits_fit_for_the_longest_workload_and_region(run_stack: Any) -> None:
    longest = "abcdefghijklmnop"  # 16, the most a workload name may have
    placements = [at("aws", "ap-southeast-2", 1), at("azure", "australiasoutheast", 1)]

    run = run_stack("service", {longest: service(placements)})

    # AWS allows load balancers and target groups 32 characters; Pulumi adds 8 to the name.
    for typ in (ALB, TARGET_GROUP):
        (resource,) = run.of_type(typ)
        assert len(resource.name) + 8 <= 32, resource.name
    app = run.one(CONTAINER_APP, f"{longest}-azure-australiasoutheast").inputs
    assert app["containerAppName"] == longest
    environment = run.one(ENVIRONMENT, f"{longest}-azure-australiasoutheast").inputs
    assert len(environment["environmentName"]) <= 32
    assert run.one(ALB, balancer(longest, "ap-southeast-2")).inputs["tags"] == {
        "cloudbalance:workload": longest,
        "cloudbalance:region": "ap-southeast-2",
    }
