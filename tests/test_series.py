from __future__ import annotations

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
    trim_incomplete,
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
    assert complete_until(costs) == pd.Timestamp("2026-11-10")
    trimmed = trim_incomplete(costs)
    assert trimmed.costs["ChargePeriodStart"].max() == pd.Timestamp("2026-11-09")
    assert trimmed.dropped == 1
    assert trimmed.behind == ("azure",)
    assert trimmed.note is not None
    assert "azure not there yet" in trimmed.note


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
    assert complete_until(costs) == pd.Timestamp("2026-11-03")
    # a daily line for today is not complete before today has ended
    today = _daily("aws", 3)
    assert complete_until(today, now=pd.Timestamp("2026-11-03 09:00")) == pd.Timestamp("2026-11-03")


def test_a_stale_cloud_does_not_hold_the_others_back() -> None:
    costs = pd.concat([_daily("aws", 20), _daily("gcp", 5)], ignore_index=True)
    assert complete_until(costs) == pd.Timestamp("2026-11-21")
    assert trim_incomplete(costs).note is None


def test_complete_data_is_left_as_it_is() -> None:
    costs = pd.concat([_daily("aws", 4), _daily("azure", 4)], ignore_index=True)
    trimmed = trim_incomplete(costs)
    assert trimmed.dropped == 0
    assert len(trimmed.costs) == 8
    assert trimmed.note is None
    empty = trim_incomplete(costs.iloc[:0])
    assert empty.until is None
    assert empty.dropped == 0
