from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import InfeasiblePlanError, PlanError, SchemaError
from cloudbalance.models import Location, Placement, Plan, Workload
from cloudbalance.plan import (
    Budget,
    Commitment,
    Quota,
    demand_replicas,
    plan,
    reproduce_plan,
)

START = datetime(2026, 11, 23)  # a Monday
A = Location("aws", "us-east-1")
B = Location("gcp", "us-central1")
C = Location("azure", "westeurope")
NOW = datetime(2026, 11, 23, 6)


def prices(
    per_location: Mapping[Location, Sequence[float]], kind: str = "on_demand"
) -> pd.DataFrame:
    """One 2-vCPU/8-GiB SKU per location; ``per_location`` gives its cost per replica-day."""
    rows = []
    for loc, costs in per_location.items():
        for t, cost in enumerate(costs):
            rows.append(
                {
                    "ProviderName": loc.cloud,
                    "RegionId": loc.region,
                    "SkuId": "std-2",
                    "vcpus": 2.0,
                    "memory_gib": 8.0,
                    "unit_price": cost / 24.0,
                    "price_kind": kind,
                    "PricingUnit": "Hours",
                    "BillingCurrency": "USD",
                    "observed_at": START + timedelta(days=t),
                }
            )
    return pd.DataFrame(rows)


def forecast(demand: Mapping[str, Sequence[float]], spread: float = 0.0) -> pd.DataFrame:
    rows = []
    for name, values in demand.items():
        for t, v in enumerate(values):
            rows.append(
                {
                    "unique_id": name,
                    "ds": START + timedelta(days=t),
                    "yhat": v,
                    "yhat_lower": v - spread,
                    "yhat_upper": v + spread,
                    "model": "fixture",
                    "interval": 0.8,
                }
            )
    return pd.DataFrame(rows)


def accuracy(confidence: Mapping[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "unique_id": name,
                "model": "fixture",
                "mase": 0.5,
                "smape": 0.1,
                "interval": 0.8,
                "coverage": 0.8,
                "coverage_calibrated": 0.8,
                "windows": 4.0,
                "confidence": value,
            }
            for name, value in confidence.items()
        ]
    )


def shape(wl: Workload) -> Workload:
    return replace(wl, vcpus=2.0, memory_gib=8.0)


def first(p: Plan, workload: str) -> dict[str, int]:
    return {x.location.key: x.replicas for x in p.first_period if x.workload == workload}


def at(p: Plan, t: int, workload: str) -> dict[str, int]:
    return {x.location.key: x.replicas for x in p.schedule[t] if x.workload == workload}


# --------------------------------------------------------------------------------------------
# Brute force: every integer schedule up to a bound, same semantics written independently.


def brute_force(
    workloads: Sequence[Workload],
    locations: Sequence[Location],
    cost: np.ndarray,  # [W, L, T] per replica-period
    demand: np.ndarray,  # [W, T]
    current: np.ndarray,  # [W, L]
    quotas: Mapping[Location, float],
    budgets: Mapping[str, float],
    reserved: Mapping[Location, float],
    bound: int,
) -> float | None:
    W, L, T = cost.shape
    free = [
        (i, j)
        for i, w in enumerate(workloads)
        for j, loc in enumerate(locations)
        if not w.allowed or loc in w.allowed
    ]
    n = len(free) * T
    grids = np.array(list(itertools.product(range(bound + 1), repeat=n)), dtype=float)
    x = np.zeros((len(grids), W, L, T))
    for k, (i, j) in enumerate(free):
        x[:, i, j, :] = grids[:, k * T : (k + 1) * T]
    ok = np.ones(len(grids), dtype=bool)
    total = x.sum(axis=2)  # [K, W, T]
    ok &= np.all(total >= demand[None], axis=(1, 2))
    prev = np.concatenate(
        [np.broadcast_to(current[None, :, :, None], (len(x), W, L, 1)), x[..., :-1]], axis=3
    )
    added = np.maximum(0, x - prev)
    for i, w in enumerate(workloads):
        if w.max_change is not None:  # on the previous demand; growth is not throttled
            d_prev = np.concatenate([[current[i].sum()], demand[i, :-1]])
            growth = np.maximum(0, demand[i] - d_prev)
            limit = np.floor(w.max_change * np.maximum(1, d_prev) + 1e-9) + growth
            ok &= np.all(added[:, i].sum(axis=1) <= limit[None] + 1e-9, axis=1)
        if w.max_share < 1:  # on the demand, rounded up to a whole replica
            cap = np.maximum(1, np.ceil(w.max_share * demand[i] - 1e-9))
            ok &= np.all(x[:, i] <= cap[None, None, :], axis=(1, 2))
        if w.min_locations > 1:
            used = (x[:, i] >= 1).sum(axis=1)
            ok &= np.all(used >= w.min_locations, axis=1)
    vcpus = np.array([w.vcpus for w in workloads])
    for j, loc in enumerate(locations):
        if loc in quotas:
            ok &= np.all(
                (x[:, :, j, :] * vcpus[None, :, None]).sum(axis=1) <= quotas[loc] + 1e-9, axis=1
            )
    spend = x * cost[None]
    for j, loc in enumerate(locations):  # reserved vCPUs cover the dearest vCPUs first
        cap_left = np.full((len(x), T), reserved.get(loc, 0.0))
        rate = cost[:, j, :] / vcpus[:, None]  # [W, T]
        for t in range(T):
            for i in np.argsort(-rate[:, t], kind="stable"):
                used = np.minimum(cap_left[:, t], vcpus[i] * x[:, i, j, t])
                spend[:, i, j, t] -= used * rate[i, t]
                cap_left[:, t] -= used
    moves = added * np.array([w.move_cost for w in workloads])[None, :, None, None]
    per_loc = (spend + moves).sum(axis=(1, 3))  # [K, L]
    for cloud, amount in budgets.items():
        cols = [j for j, loc in enumerate(locations) if loc.cloud == cloud]
        ok &= per_loc[:, cols].sum(axis=1) <= amount + 1e-9
    if not ok.any():
        return None
    return float(per_loc.sum(axis=1)[ok].min())


@dataclass(frozen=True)
class Instance:
    workloads: list[Workload]
    locations: list[Location]
    cost: np.ndarray  # [W, L, T]
    demand: np.ndarray  # [W, T]
    current: np.ndarray  # [W, L]
    quotas: dict[Location, float]
    budgets: dict[str, float]
    reserved: dict[Location, float]


def random_instance(seed: int) -> Instance:
    rng = np.random.default_rng(seed)
    locs = [A, B]
    T = 2 if seed % 2 else 3
    W = 2 if T == 2 else 1
    workloads = [
        Workload(
            f"w{i}",
            vcpus=2.0,
            memory_gib=8.0 + i,  # its own SKU, so each workload has its own prices
            max_change=[None, 0.5, 1.0][int(rng.integers(3))],
            max_share=[1.0, 0.75][int(rng.integers(2))],
            min_locations=int(rng.integers(1, 3)) if seed % 3 == 0 else 1,
            move_cost=float(rng.integers(0, 4)),
        )
        for i in range(W)
    ]
    return Instance(
        workloads=workloads,
        locations=locs,
        cost=rng.integers(1, 10, size=(W, len(locs), T)).astype(float),
        demand=rng.integers(1, 4, size=(W, T)),
        current=rng.integers(0, 3, size=(W, len(locs))),
        quotas={A: float(rng.integers(2, 8) * 2)} if seed % 4 == 1 else {},
        budgets={"gcp": float(rng.integers(10, 40))} if seed % 5 == 2 else {},
        reserved={B: 2.0} if seed % 3 == 1 else {},
    )


def run_instance(inst: Instance) -> Plan:
    rows = []
    for i, w in enumerate(inst.workloads):
        for j, loc in enumerate(inst.locations):
            for t in range(inst.cost.shape[2]):
                rows.append(
                    {
                        "ProviderName": loc.cloud,
                        "RegionId": loc.region,
                        "SkuId": f"shape-{i}",
                        "vcpus": w.vcpus,
                        "memory_gib": w.memory_gib,
                        "unit_price": inst.cost[i, j, t] / 24.0,
                        "price_kind": "on_demand",
                        "PricingUnit": "Hours",
                        "BillingCurrency": "USD",
                        "observed_at": START + timedelta(days=t),
                    }
                )
    placements = [
        Placement(w.name, loc, int(inst.current[i, j]))
        for i, w in enumerate(inst.workloads)
        for j, loc in enumerate(inst.locations)
        if inst.current[i, j] > 0
    ]
    return plan(
        forecast({w.name: list(inst.demand[i]) for i, w in enumerate(inst.workloads)}),
        pd.DataFrame(rows),
        inst.workloads,
        placements,
        quantile=0.5,
        quotas=[Quota(loc, v) for loc, v in inst.quotas.items()],
        budgets=[Budget(c, v) for c, v in inst.budgets.items()],
        commitments=[
            Commitment(loc.cloud, loc.region, vcpus=v) for loc, v in inst.reserved.items()
        ],
        max_gap=0.0,
        now=NOW,
    )


@pytest.mark.parametrize("seed", range(12))
def test_small_instances_match_brute_force_exactly(seed: int) -> None:
    inst = random_instance(seed)
    cost = inst.cost.copy()
    # w0 (8 GiB) also fits w1's 9-GiB SKU: the catalog takes the cheaper per location and
    # period, so the brute force sees the same effective prices.
    if len(inst.workloads) == 2:
        cost[0] = np.minimum(cost[0], cost[1])
    expected = brute_force(
        inst.workloads,
        inst.locations,
        cost,
        inst.demand,
        inst.current,
        inst.quotas,
        inst.budgets,
        inst.reserved,
        bound=4,
    )
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            run_instance(inst)
        return
    result = run_instance(inst)
    assert result.expected_cost == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Every constraint binding


def test_cheapest_location_wins_without_constraints() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    assert first(p, "api") == {B.key: 4}
    assert p.baseline_cost == pytest.approx(80.0)
    assert p.expected_cost == pytest.approx(64.0)
    assert p.saving == pytest.approx(16.0)


def test_residency_keeps_a_workload_out_of_a_cheaper_region() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8], C: [9, 9]}),
        [shape(Workload("api", allowed=(A, C)))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    assert first(p, "api") == {C.key: 4}


def test_ha_minimum_spreads_over_locations() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8], C: [9, 9]}),
        [shape(Workload("api", min_locations=3))],
        quantile=0.5,
        now=NOW,
    )
    assert set(first(p, "api")) == {A.key, B.key, C.key}
    assert sum(first(p, "api").values()) == 4
    assert first(p, "api")[B.key] == 2


def test_max_share_caps_one_location() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api", max_share=0.5))],
        quantile=0.5,
        now=NOW,
    )
    assert first(p, "api") == {A.key: 2, B.key: 2}


def test_quota_sends_the_overflow_to_the_next_cheapest_location() -> None:
    p = plan(
        forecast({"api": [4, 4], "web": [3, 3]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api")), shape(Workload("web"))],
        quantile=0.5,
        quotas=[Quota(B, 10.0)],  # 5 replicas of 2 vCPUs
        now=NOW,
    )
    at_b = first(p, "api").get(B.key, 0) + first(p, "web").get(B.key, 0)
    assert at_b == 5
    assert sum(first(p, "api").values()) + sum(first(p, "web").values()) == 7


def test_budget_caps_a_clouds_spend() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api"))],
        quantile=0.5,
        budgets=[Budget("gcp", 40.0)],  # 5 replica-days at 8
        now=NOW,
    )
    gcp_days = sum(at(p, t, "api").get(B.key, 0) for t in range(2))
    assert gcp_days == 5
    assert p.expected_cost == pytest.approx(5 * 8 + 3 * 10)


def test_throttle_limits_what_moves_per_period() -> None:
    p = plan(
        forecast({"api": [10, 10, 10]}),
        prices({A: [10, 10, 10], B: [5, 5, 5]}),
        [shape(Workload("api", max_change=0.3))],
        [Placement("api", A, 10)],
        quantile=0.5,
        now=NOW,
    )
    assert [at(p, t, "api").get(B.key, 0) for t in range(3)] == [3, 6, 9]


def test_move_cost_decides_whether_a_small_difference_is_worth_it() -> None:
    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [9, 9]}))
    stay = plan(
        *args,
        [shape(Workload("api", move_cost=3.0))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    go = plan(
        *args,
        [shape(Workload("api", move_cost=1.0))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    assert first(stay, "api") == {A.key: 4}
    assert stay.moves == ()
    assert first(go, "api") == {B.key: 4}


def test_reserved_capacity_costs_nothing_up_to_its_size() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        commitments=[Commitment("aws", "us-east-1", vcpus=6.0, name="ri-1")],
        now=NOW,
    )
    assert first(p, "api") == {A.key: 3, B.key: 1}
    assert p.expected_cost == pytest.approx(2 * 8)


def test_savings_plan_covers_spend_in_its_cloud() -> None:
    p = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [8, 8]}),
        [shape(Workload("api"))],
        quantile=0.5,
        commitments=[Commitment("aws", amount=25.0, name="sp")],
        now=NOW,
    )
    # 25 of aws spend per day is already paid: 2 replicas (20) at A fit under it for free
    # and a third would cost 5 more (cheaper than 8 at B).
    assert first(p, "api") == {A.key: 3, B.key: 1}
    assert p.expected_cost == pytest.approx(2 * (5 + 8))


def test_spike_at_period_five_with_a_throttle_starts_moving_in_period_one() -> None:
    cost_a = [10, 10, 10, 10, 30, 30, 30, 30]
    cost_b = [12] * 8
    demand = forecast({"api": [10] * 8})
    frame = prices({A: cost_a, B: cost_b})
    free = plan(
        demand, frame, [shape(Workload("api"))], [Placement("api", A, 10)], quantile=0.5, now=NOW
    )
    throttled = plan(
        demand,
        frame,
        [shape(Workload("api", max_change=0.2, move_cost=1.0))],
        [Placement("api", A, 10)],
        quantile=0.5,
        now=NOW,
    )
    assert first(free, "api") == {A.key: 10}
    assert at(free, 4, "api") == {B.key: 10}
    assert first(throttled, "api") == {A.key: 8, B.key: 2}
    assert [at(throttled, t, "api").get(B.key, 0) for t in range(5)] == [2, 4, 6, 8, 10]
    reason = next(m.reason for m in throttled.moves if m.location == B)
    assert "aws:us-east-1 on-demand +200% from Fri (period 5)" in reason
    assert re.search(
        r"gcp:us-central1 cheaper by \$\d+ over 8 days after \$10\.00 of move costs over the "
        r"horizon",
        reason,
    )


# --------------------------------------------------------------------------------------------
# Infeasibility is explained


def test_quota_below_one_workloads_demand_names_workload_period_and_fix() -> None:
    with pytest.raises(InfeasiblePlanError) as info:
        plan(
            forecast({"api": [4, 6]}),
            prices({A: [10, 10]}),
            [shape(Workload("api"))],
            quantile=0.5,
            quotas=[Quota(A, 10.0)],
            now=NOW,
        )
    err = info.value
    assert err.workload == "api"
    assert any("api needs 12 vCPUs" in c and "period 2" in c for c in err.conflicts)
    assert any("raise a vCPU quota among aws:us-east-1 by 2" in s for s in err.suggestions)


def test_shared_quota_conflict_is_found_by_the_deletion_filter() -> None:
    with pytest.raises(InfeasiblePlanError) as info:
        plan(
            forecast({"api": [2, 3], "web": [2, 4]}),
            prices({A: [10, 10], B: [8, 8]}),
            [
                shape(Workload("api", allowed=(A,))),
                shape(Workload("web", allowed=(A, B))),
            ],
            quantile=0.5,
            quotas=[Quota(A, 10.0), Quota(B, 2.0)],
            now=NOW,
        )
    err = info.value
    text = str(err)
    assert "first failing: period 2" in text
    assert any("vCPU quota of 10 at aws:us-east-1" in c for c in err.conflicts)
    assert any("vCPU quota of 2 at gcp:us-central1" in c for c in err.conflicts)
    assert any("raise the vCPU quota at aws:us-east-1 to 12" in s for s in err.suggestions)
    assert any("api" in c and "web" in c for c in err.conflicts)


def test_ha_minimum_above_allowed_locations_is_explained() -> None:
    with pytest.raises(InfeasiblePlanError) as info:
        plan(
            forecast({"db": [2, 2]}),
            prices({A: [10, 10], B: [8, 8], C: [9, 9]}),
            [shape(Workload("db", allowed=(A, B), min_locations=3))],
            quantile=0.5,
            now=NOW,
        )
    assert info.value.workload == "db"
    assert "needs at least 3 locations (HA) but only 2" in str(info.value)
    assert "allow 1 more region(s) for db" in str(info.value)


def test_throttle_against_residency_names_both() -> None:
    # The workload runs where it may no longer run; the throttle forbids moving it all at once.
    with pytest.raises(InfeasiblePlanError) as info:
        plan(
            forecast({"api": [10, 10]}),
            prices({A: [10, 10], B: [8, 8]}),
            [shape(Workload("api", allowed=(B,), max_change=0.2))],
            [Placement("api", A, 10)],
            quantile=0.5,
            now=NOW,
        )
    err = info.value
    assert err.workload == "api"
    joined = " | ".join(err.conflicts)
    assert "change throttle of api" in joined
    assert "allowed locations of api (gcp:us-central1)" in joined
    assert "period 1" in joined
    assert any("allow aws:us-east-1 for api" in s for s in err.suggestions)


def test_budget_too_small_suggests_the_amount_that_works() -> None:
    with pytest.raises(InfeasiblePlanError) as info:
        plan(
            forecast({"api": [2, 2]}),
            prices({A: [10, 10]}),
            [shape(Workload("api"))],
            quantile=0.5,
            budgets=[Budget("aws", 30.0)],
            now=NOW,
        )
    err = info.value
    assert any("aws budget of 30.00 USD" in c for c in err.conflicts)
    assert any("raise the aws budget to 40.00 USD" in s for s in err.suggestions)


def test_workload_with_no_priced_allowed_location_is_explained() -> None:
    with pytest.raises(InfeasiblePlanError, match="none of its allowed locations"):
        plan(
            forecast({"api": [1]}),
            prices({A: [10]}),
            [shape(Workload("api", allowed=(C,)))],
            quantile=0.5,
            now=NOW,
        )


# --------------------------------------------------------------------------------------------
# Confidence and guardrails


def test_moves_are_not_made_when_the_saving_is_within_the_uncertainty() -> None:
    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [8, 8]}), [shape(Workload("api"))])
    current = [Placement("api", A, 4)]
    # The uncertainty applied whole (hold_quantile 0.9: the saving's lower 10% quantile).
    sure = plan(
        *args, current, quantile=0.5, hold_quantile=0.9, accuracy=accuracy({"api": 0.9}), now=NOW
    )
    unsure = plan(
        *args, current, quantile=0.5, hold_quantile=0.9, accuracy=accuracy({"api": 0.4}), now=NOW
    )
    # At the default (0.5: the forecast saving net of move costs) the unsure move is made.
    made = plan(*args, current, quantile=0.5, accuracy=accuracy({"api": 0.4}), now=NOW)
    assert first(made, "api") == {B.key: 4}
    with pytest.raises(PlanError, match="hold_quantile"):
        plan(*args, current, quantile=0.5, hold_quantile=0.3, now=NOW)
    assert first(sure, "api") == {B.key: 4}
    assert all(m.confidence == pytest.approx(0.9) for m in sure.moves)
    assert sure.confidence == pytest.approx(0.9)
    assert first(unsure, "api") == {A.key: 4}
    assert unsure.moves == ()
    assert any("within its forecast uncertainty" in n for n in unsure.notes)


def test_a_wide_price_forecast_band_blocks_a_move_a_narrow_one_does_not() -> None:
    observed = prices({A: [10], B: [9.5]})
    ids = ["aws:us-east-1:std-2:on_demand", "gcp:us-central1:std-2:on_demand"]

    def band(low: float, high: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "unique_id": [ids[0], ids[0], ids[1], ids[1]],
                "ds": [START + timedelta(days=d) for d in (1, 2, 1, 2)],
                "yhat": [x / 24 for x in (10, 10, 9, 9)],
                "yhat_lower": [x / 24 for x in (10, 10, low, low)],
                "yhat_upper": [x / 24 for x in (10, 10, high, high)],
                "model": "fixture",
                "interval": 0.8,
            }
        )

    def run(low: float, high: float) -> Plan:
        return plan(
            forecast({"api": [4, 4, 4]}),
            observed,
            [shape(Workload("api"))],
            [Placement("api", A, 4)],
            price_forecast=band(low, high),
            quantile=0.5,
            hold_quantile=0.9,
            accuracy=accuracy({"api": 1.0}),
            now=NOW,
        )

    narrow, wide = run(8.8, 9.2), run(2, 16)
    assert first(narrow, "api") == {B.key: 4}
    assert first(wide, "api") == {A.key: 4}
    assert any("within its forecast uncertainty" in n for n in wide.notes)


def test_no_relocation_below_the_minimum_saving() -> None:
    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [9, 9]}), [shape(Workload("api"))])
    current = [Placement("api", A, 4)]
    made = plan(*args, current, quantile=0.5, min_saving=7.0, now=NOW)
    held = plan(*args, current, quantile=0.5, min_saving=9.0, now=NOW)
    # min_saving_pct is a fraction of the baseline (0.02 = 2%), as in cloudbalance.yaml: the
    # move saves 8 of 80 (10%).
    held_pct = plan(*args, current, quantile=0.5, min_saving_pct=0.15, now=NOW)
    made_pct = plan(*args, current, quantile=0.5, min_saving_pct=0.05, now=NOW)
    assert first(made, "api") == {B.key: 4}
    assert first(made_pct, "api") == {B.key: 4}
    with pytest.raises(PlanError, match="fraction"):
        plan(*args, current, quantile=0.5, min_saving_pct=15.0, now=NOW)
    for p in (held, held_pct):
        assert first(p, "api") == {A.key: 4}
        assert p.moves == ()
        assert p.inputs["outcome"] == "below_minimum_saving"
        assert any("below the minimum" in n for n in p.notes)


def test_growth_is_scaling_in_place_not_a_relocation() -> None:
    p = plan(
        forecast({"api": [6, 6]}),
        prices({A: [10, 10], B: [10, 10]}),
        [shape(Workload("api", max_change=0.1))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    assert first(p, "api") == {A.key: 6}
    (move,) = p.moves
    assert move.delta == 2
    assert move.reason.startswith("scale in place to 6 replicas")


# --------------------------------------------------------------------------------------------
# Demand at a quantile


def test_quantile_reads_the_forecast_interval() -> None:
    frame = forecast({"api": [10.0]}, spread=4.0)  # interval 0.8: upper bound is quantile 0.9
    assert demand_replicas(frame, 0.5)[0] == 10
    assert demand_replicas(frame, 0.9)[0] == 14
    assert 10 < demand_replicas(frame, 0.7)[0] < 14
    assert demand_replicas(frame, 0.1)[0] == 6
    with pytest.raises(PlanError, match="quantile"):
        demand_replicas(frame, 1.0)


def test_demand_is_in_replicas_and_never_divided_again() -> None:
    # demand_series counts replicas already: demand_per_replica must not divide it a second time.
    wl = shape(Workload("api", demand_per_replica=3.0))
    made = plan(forecast({"api": [6, 6]}), prices({A: [1, 1]}), [wl], quantile=0.5, now=NOW)
    assert first(made, "api") == {A.key: 6}


# --------------------------------------------------------------------------------------------
# Serialisation, reproduction, ids


def test_plan_round_trips_through_json_and_reproduces() -> None:
    p = plan(
        forecast({"api": [4, 5], "web": [2, 2]}, spread=1.0),
        prices({A: [10, 10], B: [8, 8]}),
        [
            shape(Workload("api", max_change=0.5, move_cost=0.5)),
            shape(Workload("web", allowed=(A,))),
        ],
        [Placement("api", A, 4), Placement("web", A, 2)],
        quantile=0.8,
        quotas=[Quota(B, 8.0)],
        budgets=[Budget("aws", 1000.0)],
        commitments=[Commitment("aws", "us-east-1", vcpus=2.0, start=START)],
        now=NOW,
    )
    again = Plan.from_json(p.to_json())
    assert again == p
    again_twice = reproduce_plan(again)
    assert again_twice.plan_id == p.plan_id
    assert again_twice.schedule == p.schedule
    assert again_twice.moves == p.moves
    assert re.fullmatch(r"[0-9a-f]{12}", p.plan_id)


def test_plan_id_depends_on_inputs_not_on_the_clock() -> None:
    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [8, 8]}), [shape(Workload("api"))])
    one = plan(*args, quantile=0.5, now=NOW)
    two = plan(*args, quantile=0.5, now=NOW + timedelta(days=1))
    other = plan(*args, quantile=0.6, now=NOW)
    assert one.plan_id == two.plan_id
    assert one.plan_id != other.plan_id


# --------------------------------------------------------------------------------------------
# Bad input


def test_forecast_with_a_missing_period_names_the_workload() -> None:
    frame = forecast({"api": [4, 4, 4], "web": [1, 1, 1]})
    frame = frame.drop(index=4)  # web, day 2
    with pytest.raises(SchemaError, match=r"web.*|no forecast for period") as info:
        plan(
            frame, prices({A: [1, 1, 1]}), [shape(Workload("api")), shape(Workload("web"))], now=NOW
        )
    assert "web" in str(info.value)


def test_bad_workload_spec_is_a_plan_error_naming_it() -> None:
    with pytest.raises(PlanError) as info:
        plan(
            forecast({"api": [1]}),
            prices({A: [1]}),
            [shape(Workload("api", max_share=1.5))],
            now=NOW,
        )
    assert info.value.workload == "api"
    assert "max_share" in str(info.value)


def test_current_placement_of_an_unknown_workload_is_refused() -> None:
    with pytest.raises(PlanError, match="ghost"):
        plan(
            forecast({"api": [1]}),
            prices({A: [1]}),
            [shape(Workload("api"))],
            [Placement("ghost", A, 1)],
            now=NOW,
        )


def test_commitment_needs_exactly_one_size() -> None:
    with pytest.raises(PlanError, match="exactly one"):
        Commitment("aws", "us-east-1", vcpus=2.0, amount=3.0)
    with pytest.raises(PlanError, match="need a region"):
        Commitment("aws", vcpus=2.0)
