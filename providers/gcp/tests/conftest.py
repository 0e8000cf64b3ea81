"""Fixtures for the GCP provider tests: export rows, catalog SKUs and the two fake APIs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FakeBigQuery, FakeCatalog
from google.auth.credentials import AnonymousCredentials

TABLE = "billing-proj.billing_export.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"
DETAILED = "billing-proj.billing_export.gcp_billing_export_resource_v1_0A1B2C_3D4E5F_6A7B8C"
ACCOUNT = "0A1B2C-3D4E5F-6A7B8C"
COMPUTE = {"id": "6F81-5844-456A", "description": "Compute Engine"}
STORAGE = {"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"}


def export_row(
    when: str,
    *,
    cost: float,
    project: str = "shop-prod",
    service: dict[str, str] = COMPUTE,
    sku: str = "CP-N2-CORE",
    region: str | None = "us-central1",
    labels: dict[str, str] | None = None,
    credits: list[float] | None = None,
    cost_type: str = "regular",
    account: str = ACCOUNT,
    export_lag_hours: int = 6,
    resource: str | None = None,
) -> dict[str, Any]:
    """One hour of one SKU as the billing export writes it."""
    start = datetime.fromisoformat(when)
    exported = start + timedelta(hours=export_lag_hours)
    return {
        "billing_account_id": account,
        "service": service,
        "sku": {"id": sku, "description": f"{sku} description"},
        "usage_start_time": start.isoformat(sep=" "),
        "usage_end_time": (start + timedelta(hours=1)).isoformat(sep=" "),
        "project": {"id": project, "number": "1234", "name": project, "labels": []},
        "labels": [{"key": k, "value": v} for k, v in (labels or {}).items()],
        "system_labels": [],
        "location": {"location": region, "country": "US", "region": region, "zone": None},
        "export_time": exported.isoformat(sep=" "),
        "cost": cost,
        "currency": "USD",
        "currency_conversion_rate": 1.0,
        "usage": {
            "amount": 3600.0,
            "unit": "seconds",
            "amount_in_pricing_units": 1.0,
            "pricing_unit": "hour",
        },
        "credits": [
            {"name": "Sustained usage discount", "amount": c, "type": "SUSTAINED_USAGE_DISCOUNT"}
            for c in (credits or [])
        ],
        "invoice": {"month": start.strftime("%Y%m")},
        "cost_type": cost_type,
        "cost_at_list": cost * 1.2,
        "_PARTITIONTIME": exported.replace(hour=0, minute=0, second=0).isoformat(sep=" "),
        "resource": {"name": resource, "global_name": resource and f"//compute/{resource}"},
    }


def default_rows() -> list[dict[str, Any]]:
    """Three days (2024-01-01..03) of two projects, labels, credits, a tax line."""
    rows: list[dict[str, Any]] = []
    for day in (1, 2, 3):
        for hour in (0, 6, 12, 23):
            rows.append(
                export_row(
                    f"2024-01-0{day} {hour:02d}:00:00",
                    cost=1.0 + day,
                    labels={"workload": "checkout", "team": "web"},
                    credits=[-0.1, -0.05],
                )
            )
            rows.append(
                export_row(
                    f"2024-01-0{day} {hour:02d}:00:00",
                    cost=0.5,
                    project="data-prod",
                    service=STORAGE,
                    sku="ST-STD",
                    region="us",
                    labels={"workload": "lake"},
                )
            )
        rows.append(
            export_row(
                f"2024-01-0{day} 00:00:00", cost=0.3, cost_type="tax", sku="TAX", region=None
            )
        )
    return rows


def sku(
    sku_id: str,
    description: str,
    nanos: int,
    *,
    regions: tuple[str, ...] = ("us-central1",),
    usage_type: str = "OnDemand",
    unit: str = "h",
    units: str = "0",
    currency: str = "USD",
    family: str = "Compute",
) -> dict[str, Any]:
    """One Compute Engine SKU as ``services.skus.list`` returns it."""
    return {
        "name": f"services/6F81-5844-456A/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": family,
            "resourceGroup": "CPU" if unit == "h" else "RAM",
            "usageType": usage_type,
        },
        "serviceRegions": list(regions),
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "usageUnitDescription": "hour",
                    "baseUnit": "s",
                    "baseUnitDescription": "second",
                    "baseUnitConversionFactor": 3600,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": currency, "units": units, "nanos": nanos},
                        }
                    ],
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2024-01-01T00:00:00Z",
            }
        ],
        "serviceProviderName": "Google",
    }


def default_skus() -> list[dict[str, Any]]:
    """N2 and E2 vCPU/RAM rates (on-demand and spot) in two regions, plus SKUs to skip."""
    return [
        sku("N2-CORE-IA", "N2 Instance Core running in Iowa", 31_611_000),
        sku("N2-RAM-IA", "N2 Instance Ram running in Iowa", 4_237_000, unit="GiBy.h"),
        sku(
            "N2-CORE-IA-SPOT",
            "Spot Preemptible N2 Instance Core running in Iowa",
            7_650_000,
            usage_type="Preemptible",
        ),
        sku(
            "N2-RAM-IA-SPOT",
            "Spot Preemptible N2 Instance Ram running in Iowa",
            1_025_000,
            usage_type="Preemptible",
            unit="GiBy.h",
        ),
        sku(
            "N2-CORE-BE",
            "N2 Instance Core running in Belgium",
            34_773_000,
            regions=("europe-west1",),
        ),
        sku(
            "N2-RAM-BE",
            "N2 Instance Ram running in Belgium",
            4_661_000,
            regions=("europe-west1",),
            unit="GiBy.h",
        ),
        sku("E2-CORE-IA", "E2 Instance Core running in Iowa", 21_811_590),
        sku("E2-RAM-IA", "E2 Instance Ram running in Iowa", 2_923_530, unit="GiBy.h"),
        sku("N2-CUSTOM", "N2 Custom Instance Core running in Iowa", 33_191_550),
        sku("PD-STD", "Storage PD Capacity", 40_000_000, unit="GiBy.mo", family="Storage"),
        sku("GPU-T4", "Nvidia Tesla T4 GPU running in Iowa", 350_000_000),
        sku(
            "N2-CUD",
            "Commitment v1: N2 Cpu in Americas for 1 Year",
            19_915_000,
            usage_type="Commit1Yr",
        ),
    ]


@pytest.fixture(name="export_row")
def export_row_fixture() -> Callable[..., dict[str, Any]]:
    return export_row


@pytest.fixture(name="default_rows")
def default_rows_fixture() -> Callable[[], list[dict[str, Any]]]:
    return default_rows


@pytest.fixture(name="sku")
def sku_fixture() -> Callable[..., dict[str, Any]]:
    return sku


@pytest.fixture(name="default_skus")
def default_skus_fixture() -> Callable[[], list[dict[str, Any]]]:
    return default_skus


@pytest.fixture
def bigquery() -> Iterator[FakeBigQuery]:
    with FakeBigQuery(project="billing-proj", page_size=4) as fake:
        fake.add_export(TABLE, default_rows())
        yield fake


@pytest.fixture
def catalog() -> Iterator[FakeCatalog]:
    with FakeCatalog(default_skus(), page_size=3) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_provider(
    bigquery: FakeBigQuery, catalog: FakeCatalog, sleeps: list[float]
) -> Callable[..., GCPProvider]:
    def make(**options: Any) -> GCPProvider:
        settings: dict[str, Any] = {
            "billing_table": TABLE,
            "project": "billing-proj",
            "labels": ["workload", "team"],
            "machine_types": ["n2-standard-4", "n2-highmem-2", "e2-standard-2"],
            "bigquery_endpoint": bigquery.endpoint,
            "catalog_endpoint": catalog.endpoint,
            "credentials": AnonymousCredentials(),
            "sleep": sleeps.append,
        }
        settings.update(options)
        return GCPProvider(**settings)

    return make
