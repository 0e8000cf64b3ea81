"""Planner scale curve: 100 to 5,000 workloads x 9 locations x 14 periods, quotas and budgets bind.

Run: ``python benchmarks/bench_planner.py`` (``--quick`` stops the curve at 1,000;
``--commitments`` runs every size twice, without and with commitments, see :func:`commitments`).

Prints, per size: the model's variables; the wall and process CPU time to build the problem
from frames and plan it (gap <= 0.5%, guardrails included); measured in the same run, the time
of the full model's LP relaxation alone (the baseline: any exact solve must at least solve it)
and the ratio; the proven gap; how much of each cloud budget the plan uses (each budget is
90% (aws) or 95% (gcp) of what the plan without budgets spends there, so both bind at every
size); with commitments, how much of them the plan uses; and the plan's saving against never
moving. Targets on 2 cores: 500 < 10 s, 1,000 < 20 s, 5,000 < 120 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cloudbalance.models import Location, Placement, Workload
from cloudbalance.plan import Budget, Commitment, Problem, Quota, build_problem, solve_problem
from cloudbalance.plan.catalog import Catalog
from cloudbalance.plan.milp import build, solve, solve_lazy
from cloudbalance.plan.problem import coverage, evaluate_cloud

START = datetime(2026, 11, 23)
LOCATIONS = [
    Location("aws", "us-east-1"),
    Location("aws", "us-west-2"),
    Location("aws", "eu-west-1"),
    Location("azure", "eastus"),
    Location("azure", "westeurope"),
    Location("azure", "northeurope"),
    Location("gcp", "us-central1"),
    Location("gcp", "europe-west1"),
    Location("gcp", "asia-east1"),
]
SHAPES = [(2, 8), (4, 16), (8, 32), (2, 4)]
PERIODS = 14


Instance = tuple[
    pd.DataFrame,
    Catalog,
    list[Workload],
    list[Placement],
    list[Quota],
    list[Budget],
    list[Commitment],
]


def make_instance(n_workloads: int, seed: int = 7, *, with_commitments: bool = False) -> Instance:
    rng = np.random.default_rng(seed)
    # Prices: a SKU per shape per location, on-demand and spot, daily; spot spikes mid-horizon.
    rows = []
    base = rng.uniform(0.035, 0.05, size=len(LOCATIONS))  # per vCPU-hour
    for j, loc in enumerate(LOCATIONS):
        spike_day = int(rng.integers(3, PERIODS))
        for v, m in SHAPES:
            for t in range(PERIODS):
                od = base[j] * v * (1 + 0.02 * np.sin(t + j))
                spot = od * (0.35 if t < spike_day else rng.uniform(0.8, 1.3))
                for kind, price in (("on_demand", od), ("spot", spot)):
                    rows.append(
                        {
                            "ProviderName": loc.cloud,
                            "RegionId": loc.region,
                            "SkuId": f"s{v}x{m}",
                            "vcpus": float(v),
                            "memory_gib": float(m),
                            "unit_price": price,
                            "price_kind": kind,
                            "PricingUnit": "Hours",
                            "BillingCurrency": "USD",
                            "observed_at": START + timedelta(days=t),
                        }
                    )
    catalog = Catalog.from_frame(pd.DataFrame(rows))
    workloads, current, fc_rows = [], [], []
    for i in range(n_workloads):
        v, m = SHAPES[int(rng.integers(len(SHAPES)))]
        k = int(rng.integers(3, 7))
        allowed = tuple(LOCATIONS[j] for j in sorted(rng.choice(len(LOCATIONS), k, replace=False)))
        w = Workload(
            f"w{i:05d}",
            vcpus=float(v),
            memory_gib=float(m),
            allowed=allowed,
            min_locations=2 if i % 5 == 0 else 1,
            max_share=0.7 if i % 7 == 0 else 1.0,
            max_change=0.25 if i % 2 == 0 else None,
            move_cost=float(rng.uniform(0.5, 3.0)),
            spot=bool(i % 3 == 0),
        )
        workloads.append(w)
        level = float(rng.uniform(3, 30))
        home = allowed[int(rng.integers(len(allowed)))]
        now = int(np.ceil(level * 1.2))
        if w.min_locations > 1 or w.max_share < 1:  # start from a placement that is allowed
            other = next(loc for loc in allowed if loc != home)
            current.append(Placement(w.name, home, now - now // 2))
            current.append(Placement(w.name, other, now // 2))
        else:
            current.append(Placement(w.name, home, now))
        for t in range(PERIODS):
            y = level * (1 + 0.15 * np.sin(2 * np.pi * t / 7)) * (1.6 if t == 9 else 1.0)
            fc_rows.append(
                {
                    "unique_id": w.name,
                    "ds": START + timedelta(days=t),
                    "yhat": y,
                    "yhat_lower": 0.85 * y,
                    "yhat_upper": 1.15 * y,
                    "model": "bench",
                    "interval": 0.8,
                }
            )
    demand = pd.DataFrame(fc_rows)
    # Quotas and budgets sized from the demand so that they bind.
    peak_vcpus = sum(
        max(r["yhat_upper"] for r in fc_rows[i * PERIODS : (i + 1) * PERIODS]) * w.vcpus
        for i, w in enumerate(workloads)
    )
    quotas = [Quota(loc, 0.3 * peak_vcpus) for loc in LOCATIONS]
    # Budgets: a fixed share of what the plan without them spends at aws and gcp, so both bind
    # at every size; run() prints each one's use.
    free, _ = build_problem(demand, catalog, workloads, current, quantile=0.8, quotas=quotas)
    loose = solve_lazy(free, gap=0.005, time_limit=600)
    assert loose.x is not None
    held = commitments(free, loose.x) if with_commitments else []
    # The budgets count the net spend (what the commitments cover is paid already).
    net = dataclasses.replace(free, commitments=tuple(held))
    budgets = [
        Budget(cloud, share * evaluate_cloud(net, loose.x, cloud))
        for cloud, share in BUDGET_SHARE.items()
    ]
    return demand, catalog, workloads, current, quotas, budgets, held


def commitments(free: Problem, x: np.ndarray) -> list[Commitment]:
    """Reserved vCPUs at four locations and a savings plan per cloud, sized so that they bind.

    ``x`` is the plan without budgets or commitments. Reserved: at the three locations where
    it runs the most vCPUs, 45% of its base load there (its lowest period: used anyway); at
    the location where it runs the fewest, 30% of an even share of the whole base load (more
    than it runs there: the commitment pulls workloads in). Savings plans: per cloud, 30% of
    its lowest period's spend there.
    """
    vc = np.array([w.vcpus for w in free.workloads])
    base = (x * vc[:, None, None]).sum(axis=0).min(axis=1)  # [L] lowest period's vCPUs
    order = np.argsort(-base, kind="stable")
    out = [
        Commitment(loc.cloud, loc.region, vcpus=round(0.45 * base[j]), name=f"ri-{loc.key}")
        for j in order[:3]
        for loc in [free.locations[j]]
    ]
    low = free.locations[int(order[-1])]
    even = float(base.sum()) / len(free.locations)
    out.append(Commitment(low.cloud, low.region, vcpus=round(0.3 * even), name=f"ri-{low.key}"))
    spend = np.nan_to_num(free.cost[:, :, : x.shape[2]]) * x
    for cloud in sorted({loc.cloud for loc in free.locations}):
        mask = np.array([loc.cloud == cloud for loc in free.locations])
        lowest = float(spend[:, mask, :].sum(axis=(0, 1)).min())
        out.append(Commitment(cloud, amount=round(0.3 * lowest, 2), name=f"sp-{cloud}"))
    return out


#: Each budget as a share of what the plan without budgets spends in its cloud.
BUDGET_SHARE = {"aws": 0.9, "gcp": 0.95}


def lp_relaxation_seconds(problem: Problem, limit: float) -> float:
    """Wall time of the full model's LP relaxation (``inf`` past ``limit`` seconds)."""
    model = build(problem)
    t0 = time.perf_counter()
    sol = solve(problem, model, gap=0.0, time_limit=limit, relax=True)
    took = time.perf_counter() - t0
    return took if sol.status == 0 else math.inf


def run(n: int, *, lp_limit: float, with_commitments: bool = False) -> dict[str, Any]:
    demand, catalog, workloads, current, quotas, budgets, held = make_instance(
        n, with_commitments=with_commitments
    )
    t0, c0 = time.perf_counter(), time.process_time()
    problem, notes = build_problem(
        demand,
        catalog,
        workloads,
        current,
        quantile=0.8,
        quotas=quotas,
        budgets=budgets,
        commitments=held,
    )
    t1 = time.perf_counter()
    p = solve_problem(problem, quantile=0.8, max_gap=0.005, time_limit=600, notes=notes)
    t2, c2 = time.perf_counter(), time.process_time()
    x = np.zeros((len(problem.workloads), len(problem.locations), problem.horizon))
    for t, period in enumerate(p.schedule):
        for pl in period:
            x[problem.index(pl.workload), problem.locations.index(pl.location), t] = pl.replicas
    vc = np.array([w.vcpus for w in problem.workloads])
    budget_use = {b.cloud: evaluate_cloud(problem, x, b.cloud) / b.amount for b in problem.budgets}
    quota_use = [
        f"{q.location.key} {(x[:, j, :] * vc[:, None]).sum(axis=0).max() / q.vcpus:.1%}"
        for q in problem.quotas
        for j in [problem.locations.index(q.location)]
        if (x[:, j, :] * vc[:, None]).sum(axis=0).max() >= 0.98 * q.vcpus
    ]
    _, vcpus, covered = coverage(problem, x)
    # Share of each commitment used over the horizon (the benchmark's commitments are regional
    # vCPUs, one per location, then savings plans; all active throughout).
    used = [
        float(vcpus[:, problem.locations.index(Location(cm.cloud, str(cm.region))), :].sum())
        / (cm.vcpus * problem.horizon)
        for cm in problem.commitments
        if cm.vcpus > 0
    ]
    sps = [cm for cm in problem.commitments if cm.amount > 0]
    used += [float(covered[k].sum()) / (cm.amount * problem.horizon) for k, cm in enumerate(sps)]
    return {
        "n": n,
        "commitments": len(problem.commitments),
        "commitment_use": used,
        "vars": len(build(problem).c),
        "build_s": t1 - t0,
        "wall_s": t2 - t0,
        "cpu_s": c2 - c0,
        "lp_s": lp_relaxation_seconds(problem, lp_limit),
        "gap": float(p.inputs["solver_gap"]),
        "plan": p.expected_cost,
        "baseline": p.baseline_cost,
        "moves": len(p.moves),
        "budget_use": budget_use,
        "quota_use": quota_use,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="scaling curve up to 1,000 only")
    parser.add_argument(
        "--lp-limit", type=float, default=600.0, help="stop timing the LP baseline after this"
    )
    parser.add_argument(
        "--commitments",
        action="store_true",
        help="run each size also with reserved vCPUs and savings plans (see commitments())",
    )
    args = parser.parse_args()
    sizes = [100, 250, 500, 1000] + ([] if args.quick else [2000, 5000])
    print(f"cores available: {os.cpu_count()}; {len(LOCATIONS)} locations x {PERIODS} periods")
    print("wall and CPU: build from frames + solve (gap <= 0.5%) + guardrails; LP: the full")
    print("model's LP relaxation alone, measured in the same run (the baseline of the ratio);")
    print(f"budgets: {BUDGET_SHARE} of what the plan without them spends in the cloud")
    if args.commitments:
        print("commitments (+c): reserved vCPUs at 4 locations, a savings plan per cloud; used:")
        print("reserved at the 3 busiest locations, the 4th, then savings plans aws, azure, gcp")
    print(
        f"{'wl':>7} {'vars':>9} {'wall s':>8} {'cpu s':>8} {'LP s':>8} {'wall/LP':>8} "
        f"{'gap':>7}  budget used (aws, gcp)   saving   target"
    )
    runs = [(n, c) for n in sizes for c in ([False, True] if args.commitments else [False])]
    for n, with_commitments in runs:
        r = run(n, lp_limit=args.lp_limit, with_commitments=with_commitments)
        target = TARGETS.get(n)
        met = "" if target is None else ("met" if r["wall_s"] < target else "NOT met")
        done = math.isfinite(r["lp_s"])
        lp = f"{r['lp_s']:8.2f}" if done else f">{args.lp_limit:7.0f}"
        ratio = f"{r['wall_s'] / (r['lp_s'] if done else args.lp_limit):.2f}"
        ratio = ratio if done else "<" + ratio
        used = ", ".join(f"{v:.1%}" for v in r["budget_use"].values())
        label = f"{n}{' +c' if with_commitments else ''}"
        print(
            f"{label:>7} {r['vars']:>9,} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {lp} {ratio:>8} "
            f"{r['gap']:7.3%}  {used:<24} {1 - r['plan'] / r['baseline']:6.1%}   "
            f"{'< ' + str(target) + ' s ' + met if target else ''}",
            flush=True,
        )
        if r["quota_use"]:
            print(f"{'':>8}quotas >= 98% used: {'; '.join(r['quota_use'])}", flush=True)
        if r["commitment_use"]:
            shares = ", ".join(f"{u:.1%}" for u in r["commitment_use"])
            print(f"{'':>8}commitments used: {shares}", flush=True)


#: Wall-time targets (seconds, 2 cores) per size.
TARGETS = {500: 10, 1000: 20, 5000: 120}


if __name__ == "__main__":
    main()
