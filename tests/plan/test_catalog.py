from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import SchemaError
from cloudbalance.models import Location
from cloudbalance.plan.catalog import Catalog, cloud_id, load_catalog, period_hours

START = datetime(2026, 11, 23)


def price_row(
    provider: str = "aws",
    region: str = "us-east-1",
    sku: str = "m.large",
    vcpus: float = 2,
    memory: float = 8,
    price: float = 0.1,
    kind: str = "on_demand",
    unit: str = "Hours",
    currency: str = "USD",
    at: datetime = START,
) -> dict[str, object]:
    return {
        "ProviderName": provider,
        "RegionId": region,
        "SkuId": sku,
        "vcpus": vcpus,
        "memory_gib": memory,
        "unit_price": price,
        "price_kind": kind,
        "PricingUnit": unit,
        "BillingCurrency": currency,
        "observed_at": at,
    }


def days(n: int) -> list[datetime]:
    return [START + timedelta(days=i) for i in range(n)]


def test_focus_publisher_names_map_to_cloud_ids() -> None:
    assert cloud_id("Amazon Web Services") == "aws"
    assert cloud_id("AWS") == "aws"
    assert cloud_id("Microsoft") == "azure"
    assert cloud_id("Google Cloud") == "gcp"
    assert cloud_id("Oracle") == "oci"  # the same mapping as the store's x_Cloud
    frame = pd.DataFrame(
        [price_row(provider="Microsoft", region="westeurope"), price_row("Google Cloud", "x")]
    )
    assert Catalog.from_frame(frame).locations == (
        Location("azure", "westeurope"),
        Location("gcp", "x"),
    )


def test_hourly_price_becomes_cost_per_replica_per_day() -> None:
    catalog = Catalog.from_frame(pd.DataFrame([price_row(price=0.5)]))
    rc = catalog.replica_cost(vcpus=2, memory_gib=8, spot=False, periods=days(2), period="1D")
    np.testing.assert_allclose(rc.cost, [[12.0, 12.0]])
    assert rc.sku[0, 0] == "m.large"


def test_bigger_sku_packs_several_replicas_and_the_cheapest_per_replica_wins() -> None:
    frame = pd.DataFrame(
        [
            price_row(sku="small", vcpus=1, memory=4, price=0.2),  # too small for 2 vCPU
            price_row(sku="medium", vcpus=2, memory=8, price=0.3),
            price_row(sku="xlarge", vcpus=8, memory=32, price=1.0),  # 4 replicas: 0.25 each
        ]
    )
    rc = Catalog.from_frame(frame).replica_cost(
        vcpus=2, memory_gib=8, spot=False, periods=days(1), period="1h"
    )
    np.testing.assert_allclose(rc.cost, [[0.25]])
    assert rc.sku[0, 0] == "xlarge"


def test_location_without_a_big_enough_sku_is_unavailable() -> None:
    frame = pd.DataFrame([price_row(vcpus=1, memory=2)])
    rc = Catalog.from_frame(frame).replica_cost(
        vcpus=4, memory_gib=16, spot=False, periods=days(1), period="1D"
    )
    assert np.isnan(rc.cost).all()


def test_only_spot_tolerant_workloads_pay_spot_prices() -> None:
    frame = pd.DataFrame(
        [
            price_row(price=1.0),
            price_row(price=0.3, kind="spot"),
            price_row(price=0.6, kind="committed"),
        ]
    )
    catalog = Catalog.from_frame(frame)
    od = catalog.replica_cost(vcpus=2, memory_gib=8, spot=False, periods=days(1), period="1h")
    sp = catalog.replica_cost(vcpus=2, memory_gib=8, spot=True, periods=days(1), period="1h")
    assert od.cost[0, 0] == pytest.approx(1.0)
    assert sp.cost[0, 0] == pytest.approx(0.3)
    assert sp.kind[0, 0] == "spot"
    assert sp.committed[0, 0] == pytest.approx(0.6)


def test_each_period_pays_the_latest_price_observed_before_it() -> None:
    frame = pd.DataFrame(
        [price_row(price=1.0, at=START), price_row(price=2.0, at=START + timedelta(days=2))]
    )
    rc = Catalog.from_frame(frame).replica_cost(
        vcpus=2, memory_gib=8, spot=False, periods=days(4), period="1h"
    )
    np.testing.assert_allclose(rc.cost[0], [1.0, 1.0, 2.0, 2.0])


def test_price_forecast_is_used_after_the_last_observation_with_its_band() -> None:
    frame = pd.DataFrame([price_row(price=1.0, kind="spot", at=START)])
    forecast = pd.DataFrame(
        {
            "unique_id": ["aws:us-east-1:m.large:spot"] * 2,
            "ds": [START + timedelta(days=1), START + timedelta(days=2)],
            "yhat": [1.5, 3.0],
            "yhat_lower": [1.0, 2.0],
            "yhat_upper": [2.0, 4.0],
            "model": ["prophet"] * 2,
            "interval": [0.8] * 2,
        }
    )
    rc = Catalog.from_frame(frame, price_forecast=forecast).replica_cost(
        vcpus=2, memory_gib=8, spot=True, periods=days(3), period="1h"
    )
    np.testing.assert_allclose(rc.cost[0], [1.0, 1.5, 3.0])
    np.testing.assert_allclose(rc.lower[0], [1.0, 1.0, 2.0])
    np.testing.assert_allclose(rc.upper[0], [1.0, 2.0, 4.0])
    assert rc.forecast[0].tolist() == [False, True, True]


def test_daily_and_monthly_pricing_units_convert_to_the_period() -> None:
    frame = pd.DataFrame(
        [
            price_row(region="a", price=48.0, unit="Days"),
            price_row(region="b", price=730.0, unit="Months"),
        ]
    )
    rc = Catalog.from_frame(frame).replica_cost(
        vcpus=2, memory_gib=8, spot=False, periods=days(1), period="1h"
    )
    np.testing.assert_allclose(rc.cost[:, 0], [2.0, 1.0])


def test_unknown_provider_and_unit_are_reported_with_their_rows() -> None:
    frame = pd.DataFrame([price_row(), price_row(provider="Acme Cloud", unit="Requests")])
    with pytest.raises(SchemaError) as info:
        Catalog.from_frame(frame, file="prices.csv")
    text = str(info.value)
    assert "prices.csv, row 2, column 'ProviderName'" in text
    assert "column 'PricingUnit'" in text
    assert "Acme Cloud" in text


def test_mixed_currencies_are_refused() -> None:
    frame = pd.DataFrame([price_row(), price_row(region="b", currency="EUR")])
    with pytest.raises(SchemaError, match="one currency"):
        Catalog.from_frame(frame)


def test_negative_price_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unit_price"):
        Catalog.from_frame(pd.DataFrame([price_row(price=-1.0)]))


def test_catalog_knows_how_old_its_newest_price_is_and_is_cached() -> None:
    frame = pd.DataFrame([price_row(at=START), price_row(at=START + timedelta(hours=6))])
    catalog = load_catalog(frame)
    assert catalog.age(START + timedelta(hours=30)) == timedelta(hours=24)
    assert load_catalog(frame.copy()) is catalog
    other = load_catalog(frame.assign(unit_price=0.2))
    assert other is not catalog


def test_period_lengths() -> None:
    assert period_hours("1D") == 24
    assert period_hours("6h") == 6
    with pytest.raises(ValueError, match="fixed length"):
        period_hours("1ME")
