"""EC2 prices: Price List API pages and spot history, through stubbed real clients."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cloudbalance_aws import AWSProvider

from cloudbalance.exceptions import CredentialsError, ProviderError
from cloudbalance.models import Location
from cloudbalance.schema import validate_prices

NOW = datetime(2024, 3, 10, 12)


def product(instance_type: str, vcpu: int, memory: str, price: str, region: str) -> str:
    """One ``PriceList`` entry as the Price List API sends it: a JSON document in text."""
    sku = f"SKU{instance_type.replace('.', '')}"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": instance_type,
                    "vcpu": str(vcpu),
                    "memory": memory,
                    "regionCode": region,
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "capacitystatus": "Used",
                    "preInstalledSw": "NA",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": price},
                                "description": f"${price} per On Demand Linux {instance_type}",
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2024-03-01T00:00:00Z",
                    }
                }
            },
            "version": "20240301000000",
            "publicationDate": "2024-03-01T00:00:00Z",
        }
    )


def spot(instance_type: str, zone: str, price: str, when: datetime) -> dict[str, Any]:
    return {
        "AvailabilityZone": zone,
        "InstanceType": instance_type,
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": price,
        "Timestamp": when,
    }


def stubbed(provider: AWSProvider, service: str, region: str) -> Stubber:
    client = boto3.client(service, region_name=region)
    provider.clients.register(service, region, client)
    stubber = Stubber(client)
    stubber.activate()
    return stubber


@pytest.fixture
def provider(aws_env: None) -> AWSProvider:
    built = AWSProvider(regions=["eu-west-1"])
    built.now = lambda: NOW
    return built


def test_on_demand_prices_follow_pages_and_read_shapes(provider: AWSProvider) -> None:
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products",
        {
            "FormatVersion": "aws_v1",
            "PriceList": [product("m5.large", 2, "8 GiB", "0.1070000000", "eu-west-1")],
            "NextToken": "next",
        },
        {
            "ServiceCode": "AmazonEC2",
            "Filters": ANY,
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        },
    )
    pricing.add_response(
        "get_products",
        {
            "FormatVersion": "aws_v1",
            "PriceList": [
                product("x2iedn.32xlarge", 128, "4,096 GiB", "32.0100000000", "eu-west-1")
            ],
        },
        {
            "ServiceCode": "AmazonEC2",
            "Filters": ANY,
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
            "NextToken": "next",
        },
    )
    ec2 = stubbed(provider, "ec2", "eu-west-1")
    ec2.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                spot("m5.large", "eu-west-1a", "0.0400", datetime(2024, 3, 10, 11)),
                spot("m5.large", "eu-west-1a", "0.0900", datetime(2024, 3, 9, 11)),  # older
                spot("m5.large", "eu-west-1b", "0.0500", datetime(2024, 3, 10, 10)),
                spot("c9.unknown", "eu-west-1b", "0.0100", datetime(2024, 3, 10, 10)),
            ]
        },
        {"ProductDescriptions": ["Linux/UNIX"], "StartTime": NOW},
    )
    frame = validate_prices(provider.prices())
    pricing.assert_no_pending_responses()
    on_demand = frame[frame["price_kind"] == "on_demand"].set_index("SkuId")
    assert on_demand.loc["m5.large", "unit_price"] == pytest.approx(0.107)
    assert on_demand.loc["m5.large", "vcpus"] == 2
    assert on_demand.loc["x2iedn.32xlarge", "memory_gib"] == 4096
    assert set(frame["RegionId"]) == {"eu-west-1"}
    assert set(frame["PricingUnit"]) == {"Hours"}
    assert set(frame["ProviderName"]) == {"aws"}
    spot_rows = frame[frame["price_kind"] == "spot"]
    assert list(spot_rows["SkuId"]) == ["m5.large"]  # a type without a known shape is dropped
    assert spot_rows["unit_price"].iloc[0] == pytest.approx(0.045)  # latest per zone, averaged
    assert spot_rows["memory_gib"].iloc[0] == 8
    assert spot_rows["observed_at"].iloc[0] == datetime(2024, 3, 10, 11)


def test_filters_ask_one_region_operating_system_and_the_configured_types(aws_env: None) -> None:
    provider = AWSProvider(
        instance_types=["m5.large", "c5.xlarge"], spot=False, operating_system="Windows"
    )
    provider.now = lambda: NOW
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": []},
        {
            "ServiceCode": "AmazonEC2",
            "Filters": [
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "ap-south-1"},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Windows"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
                {"Type": "ANY_OF", "Field": "instanceType", "Value": "m5.large,c5.xlarge"},
            ],
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        },
    )
    locations = [Location("aws", "ap-south-1"), Location("gcp", "us-central1")]
    frame = provider.prices(locations)
    pricing.assert_no_pending_responses()
    assert len(frame) == 0


def test_spot_disabled_never_asks_ec2(aws_env: None) -> None:
    provider = AWSProvider(spot=False)
    provider.now = lambda: NOW
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products",
        {"PriceList": [product("t3.micro", 2, "1 GiB", "0.0104", "us-east-1")]},
    )
    ec2 = stubbed(provider, "ec2", "us-east-1")  # no responses queued: any call would fail
    frame = provider.prices()
    ec2.assert_no_pending_responses()
    assert list(frame["price_kind"]) == ["on_demand"]


def test_product_that_is_not_json_names_page_and_position(provider: AWSProvider) -> None:
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products",
        {"PriceList": [product("m5.large", 2, "8 GiB", "0.1", "eu-west-1"), "{not json"]},
    )
    with pytest.raises(ProviderError, match=r"page 1, PriceList\[1\]"):
        provider.prices()


def test_products_without_an_hourly_price_or_a_shape_are_skipped(provider: AWSProvider) -> None:
    document = json.loads(product("m5.large", 2, "8 GiB", "0.0000000000", "eu-west-1"))
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products",
        {
            "PriceList": [
                json.dumps(document),
                product("m5", 0, "NA", "4.5", "eu-west-1").replace('"vcpu": "0"', '"vcpu": "NA"'),
                product("m5.xlarge", 4, "16 GiB", "0.2140000000", "eu-west-1"),
            ]
        },
    )
    ec2 = stubbed(provider, "ec2", "eu-west-1")
    ec2.add_response("describe_spot_price_history", {"SpotPriceHistory": []})
    frame = provider.prices()
    assert list(frame["SkuId"]) == ["m5.xlarge"]


def test_malformed_spot_price_names_its_position(provider: AWSProvider) -> None:
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products", {"PriceList": [product("m5.large", 2, "8 GiB", "0.1", "eu-west-1")]}
    )
    ec2 = stubbed(provider, "ec2", "eu-west-1")
    ec2.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [{"AvailabilityZone": "eu-west-1a", "InstanceType": "m5.large"}]},
    )
    with pytest.raises(ProviderError, match=r"SpotPriceHistory\[0\]"):
        provider.prices()


def test_throttled_price_list_is_retried(aws_env: None, sleeps: list[float]) -> None:
    provider = AWSProvider(regions=["eu-west-1"], spot=False)
    provider.sleep = sleeps.append
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_client_error("get_products", "ThrottlingException", "Rate exceeded")
    pricing.add_response(
        "get_products", {"PriceList": [product("m5.large", 2, "8 GiB", "0.1", "eu-west-1")]}
    )
    assert len(provider.prices()) == 1
    assert len(sleeps) == 1


def test_spot_permission_missing_names_the_action(provider: AWSProvider) -> None:
    pricing = stubbed(provider, "pricing", "us-east-1")
    pricing.add_response(
        "get_products", {"PriceList": [product("m5.large", 2, "8 GiB", "0.1", "eu-west-1")]}
    )
    ec2 = stubbed(provider, "ec2", "eu-west-1")
    ec2.add_client_error(
        "describe_spot_price_history", "UnauthorizedOperation", http_status_code=403
    )
    with pytest.raises(CredentialsError, match="grant ec2:DescribeSpotPriceHistory"):
        provider.prices()
