"""Periods and consumed units have one home: :mod:`cloudbalance.units`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.attribution import Attribution
from cloudbalance.models import Location, Placement, Workload
from cloudbalance.series import current_placement, demand_series
from cloudbalance.store import Store
from cloudbalance.units import consumed_factor, normalise_consumed, period_hours, period_length
from tests.conftest import focus_rows


@pytest.mark.parametrize(
    ("period", "hours"),
    [("D", 24), ("1D", 24), ("7D", 168), ("W", 168), ("h", 1), ("6h", 6), ("15min", 0.25)],
)
def test_period_aliases_have_their_length(period: str, hours: float) -> None:
    assert period_hours(period) == pytest.approx(hours)


@pytest.mark.parametrize("period", ["MS", "ME", "0D", "-1D", "H", "fortnight", ""])
def test_a_period_that_is_not_a_fixed_positive_length_is_refused(period: str) -> None:
    with pytest.raises(ValueError, match="period"):
        period_length(period)


@pytest.mark.parametrize(
    ("unit", "factor", "canonical"),
    [
        ("Hours", 1.0, "Hours"),
        ("Hrs", 1.0, "Hours"),
        ("seconds", 1 / 3600, "Hours"),
        ("s", 1 / 3600, "Hours"),
        ("10 Hours", 10.0, "Hours"),
        ("  100   hours ", 100.0, "Hours"),
        ("minutes", 1 / 60, "Hours"),
        ("GB-Mo", 1.0, "GB-Months"),
    ],
)
def test_consumed_units_map_to_one_canonical_unit(unit: str, factor: float, canonical: str) -> None:
    assert consumed_factor(unit) == (pytest.approx(factor), canonical)


def test_an_unknown_unit_is_kept_as_written() -> None:
    frame = pd.DataFrame({"ConsumedQuantity": [3.0], "ConsumedUnit": ["Requests"]})
    assert normalise_consumed(frame).to_dict("list") == frame.to_dict("list")


def _gcp_seconds(days: int = 2) -> pd.DataFrame:
    """GCP compute lines: one instance all day, usage in seconds (as the billing export has)."""
    frame = focus_rows(
        days,
        ProviderName="Google Cloud",
        BillingAccountId="0A1B2C-3D4E5F-6A7B8C",
        RegionId="us-central1",
        ConsumedQuantity="86400",
        ConsumedUnit="seconds",
    )
    frame["ChargePeriodStart"] = pd.to_datetime(frame["ChargePeriodStart"])
    frame["ChargePeriodEnd"] = pd.to_datetime(frame["ChargePeriodEnd"])
    frame["ConsumedQuantity"] = frame["ConsumedQuantity"].astype(float)
    for name in ("PricingQuantity", "ListCost", "BilledCost", "EffectiveCost"):
        frame[name] = frame[name].astype(float)
    frame["x_Workload"] = "checkout"
    frame["x_Cloud"] = "gcp"
    return frame


CHECKOUT = Workload("checkout", allowed=(Location("gcp", "us-central1"),))


def test_gcp_compute_seconds_are_visible_to_demand_and_placement() -> None:
    costs = _gcp_seconds()
    demand = demand_series(costs, [CHECKOUT])
    assert demand["y"].tolist() == [1.0, 1.0]
    assert current_placement(costs, [CHECKOUT]) == (
        Placement("checkout", Location("gcp", "us-central1"), 1),
    )


def test_the_store_normalises_consumed_units_at_ingest(tmp_path: Path) -> None:
    with Store(tmp_path / "store.duckdb") as store:
        store.ingest_costs(
            _gcp_seconds().drop(columns=["x_Workload"]),
            source="gcp:api",
            attribution=Attribution(),
        )
        stored = store.costs()
    assert stored["ConsumedUnit"].unique().tolist() == ["Hours"]
    assert stored["ConsumedQuantity"].tolist() == [24.0, 24.0]
    assert stored["PricingQuantity"].tolist() == [24.0, 24.0]  # what the bill priced: untouched
    assert current_placement(stored, [CHECKOUT], at=datetime(2025, 1, 2)) == (
        Placement("checkout", Location("gcp", "us-central1"), 1),
    )
