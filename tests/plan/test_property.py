"""Property test: random small instances, every constraint switched on at random.

Each instance goes through :func:`cloudbalance.plan.plan` and through an independent MILP
written here from the architecture page's formulation with :func:`scipy.optimize.milp` (its own
variables, rows and commitment accounting; nothing imported from the planner but the public
API). Both must agree that the instance is infeasible, or on the optimal cost; a plan the
guardrail held in place must match the independent optimum with the same first period fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_array

from cloudbalance.exceptions import InfeasiblePlanError
from cloudbalance.models import Location, Placement, Plan, Workload
from cloudbalance.plan import Budget, Commitment, Quota, plan

START = datetime(2026, 11, 23)
LOCS = (
    Location("aws", "us-east-1"),
    Location("aws", "us-west-2"),
    Location("gcp", "us-central1"),
)
CLOUD_OF = [loc.cloud for loc in LOCS]


@dataclass
class Instance:
    workloads: list[Workload]
    cost: np.ndarray  # [W, L, T] per replica-period
    demand: np.ndarray  # [W, T] replicas
    current: np.ndarray  # [W, L]
    quotas: dict[int, float]  # location -> vCPUs
    budgets: dict[str, float]
    reserved: dict[int, float]  # location -> vCPUs per period
    plans: list[tuple[str, int | None, float]]  # (cloud, location or None, amount per period)


def random_instance(rng: np.random.Generator) -> Instance:
    W, L, T = int(rng.integers(1, 4)), len(LOCS), int(rng.integers(2, 4))
    workloads = []
    for i in range(W):
        allowed: tuple[Location, ...] = ()
        if rng.random() < 0.3:
            allowed = tuple(LOCS[j] for j in sorted(rng.choice(L, size=2, replace=False)))
        workloads.append(
            Workload(
                f"w{i}",
                vcpus=float(rng.choice([1.0, 2.0])),
                memory_gib=1.0,
                allowed=allowed,
                min_locations=2 if rng.random() < 0.3 else 1,
                max_share=0.5 if rng.random() < 0.3 else 1.0,
                max_change=0.5 if rng.random() < 0.3 else None,
                move_cost=float(rng.choice([0.0, 0.5, 2.0])),
            )
        )
    cost = rng.integers(2, 12, size=(W, L, T)).astype(float)
    demand = rng.integers(0, 5, size=(W, T))
    current = rng.integers(0, 3, size=(W, L)) * (rng.random((W, L)) < 0.5)
    quotas = {int(j): float(rng.integers(4, 12)) for j in range(L) if rng.random() < 0.3}
    budgets = {c: float(rng.integers(20, 120)) for c in ("aws", "gcp") if rng.random() < 0.25}
    reserved = {int(j): float(rng.integers(1, 4)) for j in range(L) if rng.random() < 0.25}
    plans: list[tuple[str, int | None, float]] = []
    for _ in range(int(rng.integers(0, 3))):
        j = int(rng.integers(0, L))
        scope = j if rng.random() < 0.6 else None
        plans.append((CLOUD_OF[j], scope, float(rng.integers(3, 15))))
    return Instance(workloads, cost, demand, current, quotas, budgets, reserved, plans)


def frames(inst: Instance) -> tuple[pd.DataFrame, pd.DataFrame, list[Workload]]:
    """The instance as planner inputs: one SKU per workload shape, priced per replica-day."""
    rows = []
    shaped = []
    for i, w in enumerate(inst.workloads):
        sku = f"w{i}"  # exact shape: no other workload fits it cheaper (memory differs)
        shaped.append(Workload(**{**w.__dict__, "memory_gib": 1.0 + i}))
        for j, loc in enumerate(LOCS):
            for t in range(inst.cost.shape[2]):
                rows.append(
                    {
                        "ProviderName": loc.cloud,
                        "RegionId": loc.region,
                        "SkuId": sku,
                        "vcpus": w.vcpus,
                        "memory_gib": 1.0 + i,
                        "unit_price": inst.cost[i, j, t] / 24.0,
                        "price_kind": "on_demand",
                        "PricingUnit": "Hours",
                        "BillingCurrency": "USD",
                        "observed_at": START + timedelta(days=t),
                    }
                )
    fc = [
        {
            "unique_id": w.name,
            "ds": START + timedelta(days=t),
            "yhat": float(inst.demand[i, t]),
            "yhat_lower": float(inst.demand[i, t]),
            "yhat_upper": float(inst.demand[i, t]),
            "model": "fixture",
            "interval": 0.8,
        }
        for i, w in enumerate(inst.workloads)
        for t in range(inst.demand.shape[1])
    ]
    return pd.DataFrame(fc), pd.DataFrame(rows), shaped


def effective(inst: Instance) -> np.ndarray:
    """Cost per replica: the cheapest SKU the shape fits, divided by the replicas it packs.

    Workload ``i``'s own SKU is priced ``inst.cost[i]`` with its vCPUs and ``1 + i`` GiB (see
    :func:`frames`); a smaller workload may fit a bigger one's SKU.
    """
    W = len(inst.workloads)
    out = inst.cost.copy()
    for j, wj in enumerate(inst.workloads):
        for i, wi in enumerate(inst.workloads):
            pack = math.floor(min(wi.vcpus / wj.vcpus, (1.0 + i) / (1.0 + j)) + 1e-9)
            if i != j and pack >= 1:
                out[j] = np.minimum(out[j], inst.cost[i] / pack)
    assert out.shape[0] == W
    return out


def independent_optimum(inst: Instance, fixed: np.ndarray | None = None) -> float | None:
    """The optimal cost by a MILP written from the page (``fixed``: first-period replicas)."""
    inst = Instance(**{**inst.__dict__, "cost": effective(inst)})
    W, L, T = inst.cost.shape
    names: dict[tuple[str, int, int, int], int] = {}

    def var(kind: str, i: int, j: int, t: int) -> int:
        return names.setdefault((kind, i, j, t), len(names))

    allowed = [[not w.allowed or LOCS[j] in w.allowed for j in range(L)] for w in inst.workloads]
    for i in range(W):
        for j in range(L):
            for t in range(T):
                var("x", i, j, t)
                var("u", i, j, t)
                if inst.workloads[i].min_locations > 1:
                    var("y", i, j, t)
                if j in inst.reserved:
                    var("r", i, j, t)
    for k in range(len(inst.plans)):
        for t in range(T):
            var("s", k, 0, t)
    n = len(names)
    c = np.zeros(n)
    lo, hi = np.zeros(n), np.full(n, np.inf)
    integer = np.zeros(n)
    rows: list[tuple[dict[int, float], float, float]] = []
    vc = [w.vcpus for w in inst.workloads]

    def net_spend(scope: list[int], t: int) -> dict[int, float]:
        terms: dict[int, float] = {}
        for i in range(W):
            for j in scope:
                terms[names[("x", i, j, t)]] = inst.cost[i, j, t]
                if j in inst.reserved:
                    terms[names[("r", i, j, t)]] = -inst.cost[i, j, t] / vc[i]
        return terms

    for i, w in enumerate(inst.workloads):
        for t in range(T):
            prev_total = inst.current[i].sum() if t == 0 else inst.demand[i, t - 1]
            rows.append(
                ({names[("x", i, j, t)]: 1.0 for j in range(L)}, inst.demand[i, t], math.inf)
            )
            for j in range(L):
                x, u = names[("x", i, j, t)], names[("u", i, j, t)]
                integer[x] = 1
                c[x] += inst.cost[i, j, t]
                c[u] += w.move_cost
                if not allowed[i][j]:
                    hi[x] = 0
                if w.max_share < 1:
                    hi[x] = min(hi[x], max(1, math.ceil(w.max_share * inst.demand[i, t] - 1e-9)))
                prev = {} if t == 0 else {names[("x", i, j, t - 1)]: 1.0}
                rows.append(
                    ({u: 1.0, x: -1.0, **prev}, -inst.current[i, j] if t == 0 else 0.0, math.inf)
                )
                if w.min_locations > 1:
                    y = names[("y", i, j, t)]
                    integer[y], hi[y] = 1, 1
                    rows.append(({x: 1.0, y: -1.0}, 0.0, math.inf))
                if j in inst.reserved:
                    r = names[("r", i, j, t)]
                    c[r] -= inst.cost[i, j, t] / vc[i]
                    rows.append(({r: 1.0, x: -vc[i]}, -math.inf, 0.0))
                if fixed is not None and t == 0:
                    lo[x] = hi[x] = fixed[i, j]
            if w.min_locations > 1 and inst.demand[i, t] >= 1:
                ys = {names[("y", i, j, t)]: 1.0 for j in range(L)}
                rows.append((ys, w.min_locations, math.inf))
            if w.max_change is not None:
                growth = max(0, inst.demand[i, t] - prev_total)
                limit = math.floor(w.max_change * max(1, prev_total) + 1e-9) + growth
                rows.append(({names[("u", i, j, t)]: 1.0 for j in range(L)}, -math.inf, limit))
    for t in range(T):
        for j, q in inst.quotas.items():
            rows.append(({names[("x", i, j, t)]: vc[i] for i in range(W)}, -math.inf, q))
        for j, cap in inst.reserved.items():
            rows.append(({names[("r", i, j, t)]: 1.0 for i in range(W)}, -math.inf, cap))
        # Savings plans: each region's plans cover at most its spend; a cloud's at most its spend.
        for k, (_, _scope, amount) in enumerate(inst.plans):
            s = names[("s", k, 0, t)]
            c[s] = -1.0
            hi[s] = amount
        for j in {scope for _, scope, _ in inst.plans if scope is not None}:
            terms = {k: -v for k, v in net_spend([j], t).items()}
            for k, (_, scope, _) in enumerate(inst.plans):
                if scope == j:
                    terms[names[("s", k, 0, t)]] = 1.0
            rows.append((terms, -math.inf, 0.0))
        for cloud in {cl for cl, _, _ in inst.plans}:
            scope_l = [j for j in range(L) if CLOUD_OF[j] == cloud]
            terms = {k: -v for k, v in net_spend(scope_l, t).items()}
            for k, (cl, _, _) in enumerate(inst.plans):
                if cl == cloud:
                    terms[names[("s", k, 0, t)]] = 1.0
            rows.append((terms, -math.inf, 0.0))
    for cloud, amount in inst.budgets.items():
        scope_l = [j for j in range(L) if CLOUD_OF[j] == cloud]
        terms: dict[int, float] = {}
        for t in range(T):
            for key, v in net_spend(scope_l, t).items():
                terms[key] = terms.get(key, 0.0) + v
            for i in range(W):
                for j in scope_l:
                    terms[names[("u", i, j, t)]] = inst.workloads[i].move_cost
            for k, (cl, _, _) in enumerate(inst.plans):
                if cl == cloud:
                    terms[names[("s", k, 0, t)]] = -1.0
        rows.append((terms, -math.inf, amount))
    a = lil_array((len(rows), n))
    for r, (terms, _, _) in enumerate(rows):
        for key, v in terms.items():
            a[r, key] = v
    cons = LinearConstraint(a.tocsr(), [r[1] for r in rows], [r[2] for r in rows])
    res = milp(c, constraints=cons, integrality=integer, bounds=Bounds(lo, hi))
    if res.status == 2 or res.x is None:
        return None
    assert res.status == 0, res.message
    return float(res.fun)


def run_plan(inst: Instance) -> Plan | None:
    demand, prices, workloads = frames(inst)
    current = [
        Placement(workloads[i].name, LOCS[j], int(inst.current[i, j]))
        for i in range(len(workloads))
        for j in range(len(LOCS))
        if inst.current[i, j] > 0
    ]
    try:
        return plan(
            demand,
            prices,
            workloads,
            current,
            quantile=0.5,
            quotas=[Quota(LOCS[j], q) for j, q in inst.quotas.items()],
            budgets=[Budget(c, b) for c, b in inst.budgets.items()],
            commitments=[
                *(
                    Commitment(LOCS[j].cloud, LOCS[j].region, vcpus=v)
                    for j, v in inst.reserved.items()
                ),
                *(
                    Commitment(cl, None if j is None else LOCS[j].region, amount=amt)
                    for cl, j, amt in inst.plans
                ),
            ],
            accuracy=pd.DataFrame(
                [
                    {
                        "unique_id": w.name,
                        "model": "fixture",
                        "mase": 0.5,
                        "smape": 0.1,
                        "interval": 0.8,
                        "coverage": 0.8,
                        "coverage_calibrated": 0.8,
                        "windows": 4.0,
                        "confidence": 0.7,
                    }
                    for w in workloads
                ]
            ),
            max_gap=1e-7,
            now=START,
        )
    except InfeasiblePlanError:
        return None


def first_period(p: Plan, inst: Instance) -> np.ndarray:
    out = np.zeros(inst.current.shape)
    for pl in p.first_period:
        out[int(pl.workload[1:]), LOCS.index(pl.location)] = pl.replicas
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_instances_match_an_independent_milp(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    feasible = 0
    for _ in range(15):
        inst = random_instance(rng)
        made = run_plan(inst)
        best = independent_optimum(inst)
        if made is None:
            assert best is None
            continue
        assert best is not None
        feasible += 1
        if made.inputs["outcome"] == "optimised":
            assert made.expected_cost == pytest.approx(best, abs=1e-6)
        else:  # held by the guardrail: optimal given its first period
            held = independent_optimum(inst, fixed=first_period(made, inst))
            assert held is not None
            assert made.expected_cost == pytest.approx(held, abs=1e-6)
        for w in inst.workloads:  # the share cap holds in every period, held or not
            if w.max_share < 1:
                i = int(w.name[1:])
                for t, period in enumerate(made.schedule):
                    cap = max(1, math.ceil(w.max_share * inst.demand[i, t] - 1e-9))
                    assert all(p.replicas <= cap for p in period if p.workload == w.name)
    assert feasible >= 3
