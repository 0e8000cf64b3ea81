from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from cloudbalance.attribution import Attribution
from cloudbalance.demo.sample import generate_sample
from cloudbalance.exceptions import SchemaError
from cloudbalance.models import Location
from cloudbalance.series import (
    complete_until,
    cost_series,
    current_placement,
    demand_series,
)
from cloudbalance.store import Store


@pytest.fixture(scope="module")
def sample_costs() -> tuple[pd.DataFrame, object]:
    sample = generate_sample(days=120)
    with Store(":memory:") as store:
        store.ingest_costs(
            sample.costs, source="s", attribution=Attribution(workloads=sample.workloads)
        )
        return store.costs(), sample


def test_cost_series_are_regular_and_sum_to_the_costs(sample_costs: tuple) -> None:
    costs, _ = sample_costs
    series = cost_series(costs)
    assert set(series["unique_id"]) == {"checkout", "search", "etl", "training"}
    assert series.groupby("unique_id").size().eq(120).all()
    attributed = costs[costs["x_Workload"].notna()]["EffectiveCost"].sum()
    assert series["y"].sum() == pytest.approx(attributed)


def test_demand_recovers_the_true_replicas(sample_costs: tuple) -> None:
    costs, sample = sample_costs
    demand = demand_series(costs, sample.workloads)
    truth = sample.demand.set_index(["unique_id", "ds"])["y"]
    got = demand.set_index(["unique_id", "ds"])["y"]
    # replicas are whole instances per location: within one instance per location of the truth
    assert ((got - truth.reindex(got.index)).abs() <= 2.0 + 1e-9).all()


def test_current_placement_reads_the_latest_day(sample_costs: tuple) -> None:
    costs, sample = sample_costs
    placement = {
        (p.workload, p.location): p.replicas for p in current_placement(costs, sample.workloads)
    }
    assert ("training", Location("aws", "us-west-2")) in placement
    assert all(v > 0 for v in placement.values())


def test_several_currencies_give_one_series_each(sample_costs: tuple) -> None:
    costs, _ = sample_costs
    eur = costs.head(50).assign(BillingCurrency="EUR")
    series = cost_series(pd.concat([costs, eur]), by="cloud")
    assert any(uid.endswith("(EUR)") for uid in series["unique_id"].unique())


def test_unknown_breakdowns_are_schema_errors(sample_costs: tuple) -> None:
    costs, _ = sample_costs
    with pytest.raises(SchemaError, match="cannot group by 'colour'"):
        cost_series(costs, by="colour")
    with pytest.raises(SchemaError, match="cannot total"):
        cost_series(costs, measure="Tags")


def _daily(cloud: str, days: int, *, first: str = "2026-11-01") -> pd.DataFrame:
    start = pd.date_range(first, periods=days, freq="D")
    return pd.DataFrame(
        {
            "ChargePeriodStart": start,
            "ChargePeriodEnd": start + pd.Timedelta(days=1),
            "ProviderName": cloud,
            "x_Cloud": cloud,
            "EffectiveCost": 1.0,
        }
    )


def test_a_cloud_a_day_behind_sets_the_end_of_complete_data() -> None:
    costs = pd.concat([_daily("aws", 10), _daily("azure", 9)], ignore_index=True)
    edge, notes = complete_until(costs)
    assert edge == datetime(2026, 11, 10)
    assert notes == (
        "azure: data ends 2026-11-09 while the others reach 2026-11-10; "
        "the periods after 2026-11-09 wait for its export",
    )


def test_a_partial_latest_day_is_incomplete() -> None:
    hourly = pd.date_range("2026-11-01", "2026-11-03 14:00", freq="h")
    costs = pd.DataFrame(
        {
            "ChargePeriodStart": hourly,
            "ChargePeriodEnd": hourly + pd.Timedelta(hours=1),
            "ProviderName": "gcp",
            "x_Cloud": "gcp",
        }
    )
    assert complete_until(costs) == (datetime(2026, 11, 3), ())
    # a daily line for today is not complete before today has ended
    today = _daily("aws", 3)
    assert complete_until(today, now=datetime(2026, 11, 3, 9)) == (datetime(2026, 11, 3), ())


def test_a_stale_cloud_does_not_hold_the_others_back() -> None:
    costs = pd.concat([_daily("aws", 20), _daily("gcp", 5)], ignore_index=True)
    assert complete_until(costs) == (datetime(2026, 11, 21), ())


def test_lines_longer_than_a_period_say_nothing_about_completeness() -> None:
    monthly = _daily("aws", 1, first="2026-11-01")
    monthly["ChargePeriodEnd"] = pd.Timestamp("2026-12-01")  # a monthly fee
    costs = pd.concat([_daily("aws", 4), monthly], ignore_index=True)
    assert complete_until(costs)[0] == datetime(2026, 11, 5)
    with pytest.raises(SchemaError, match="no cost lines"):
        complete_until(monthly)
