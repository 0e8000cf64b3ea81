"""The shared provider contract, run against the AWS provider on offline fixtures.

Costs come from moto's Cost Explorer, fed per request from a small table of daily rows (so
every window the suite asks for is answered like the real service would, three days a page);
prices from the real pricing and EC2 clients with stubbed answers (moto serves neither).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import boto3
import pytest
from botocore.stub import Stubber
from cloudbalance_aws import AWSProvider

from cloudbalance.testing import ProviderContract

_NOW = datetime.now(UTC).replace(tzinfo=None)
_TODAY = datetime(_NOW.year, _NOW.month, _NOW.day)
DAYS = [_TODAY - timedelta(days=d) for d in range(10, 0, -1)]


def _product(instance_type: str, vcpu: int, memory: str, price: str) -> str:
    return json.dumps(
        {
            "product": {
                "attributes": {
                    "instanceType": instance_type,
                    "vcpu": str(vcpu),
                    "memory": memory,
                    "regionCode": "us-east-1",
                }
            },
            "terms": {
                "OnDemand": {
                    "T": {"priceDimensions": {"D": {"unit": "Hrs", "pricePerUnit": {"USD": price}}}}
                }
            },
        }
    )


class TestAWSContract(ProviderContract):
    name = "aws"
    start: ClassVar[datetime] = DAYS[0]
    end: ClassVar[datetime] = DAYS[-1] + timedelta(days=1)

    @pytest.fixture
    def provider(self, moto: None, aws: Any) -> Iterator[AWSProvider]:
        built = AWSProvider(group_by=["SERVICE", "tag:workload"])
        fake = aws.FixtureCostExplorer(
            DAYS,
            [
                (["Amazon Elastic Compute Cloud - Compute", "workload$checkout"], 12.0),
                (["Amazon Simple Storage Service", "workload$"], 1.5),
            ],
        )
        fake.attach(built.clients.client("ce"))
        pricing = boto3.client("pricing", region_name="us-east-1")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        built.clients.register("pricing", "us-east-1", pricing)
        built.clients.register("ec2", "us-east-1", ec2)
        with Stubber(pricing) as price_list, Stubber(ec2) as spot:
            price_list.add_response(
                "get_products",
                {"PriceList": [_product("m5.large", 2, "8 GiB", "0.096")]},
            )
            spot.add_response(
                "describe_spot_price_history",
                {
                    "SpotPriceHistory": [
                        {
                            "AvailabilityZone": "us-east-1a",
                            "InstanceType": "m5.large",
                            "SpotPrice": "0.035",
                            "Timestamp": _NOW,
                        }
                    ]
                },
            )
            yield built
