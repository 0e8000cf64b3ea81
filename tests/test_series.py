from __future__ import annotations

import pandas as pd
import pytest

from cloudbalance.attribution import Attribution
from cloudbalance.demo.sample import generate_sample
from cloudbalance.exceptions import SchemaError
from cloudbalance.models import Location
from cloudbalance.series import cost_series, current_placement, demand_series
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
