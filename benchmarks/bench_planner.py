"""Planner benchmark: 500 workloads x 9 locations x 14 periods with quotas and budgets active.

Run: ``python benchmarks/bench_planner.py`` (``--quick`` stops the scaling curve at 1,000).

Prints, for the 500-workload case, the time to build the problem from frames, the time to solve
it to at most 0.5% optimality gap, the gap reached, and, measured in the same run, the cost of
never moving (baseline) and the plan's cost with their ratio, and the time of the LP relaxation
(a lower bound on any MILP solve of this model) with the ratio. Then the scaling curve up to
5,000 workloads. Target: 500 workloads in under 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cloudbalance.models import Location, Placement, Workload
from cloudbalance.plan import Budget, Problem, Quota, build_problem, solve_problem
from cloudbalance.plan.catalog import Catalog
from cloudbalance.plan.milp import build, solve

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


def make_instance(
    n_workloads: int, seed: int = 7
) -> tuple[pd.DataFrame, Catalog, list[Workload], list[Placement], list[Quota], list[Budget]]:
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
    # Budgets: below what the plan without them spends at aws and gcp (about 7% and 23% of
    # this average), so both bind; run() prints each one's use.
    avg = float(np.mean(base)) * 24 * PERIODS * peak_vcpus * 0.8
    budgets = [Budget("aws", 0.065 * avg), Budget("gcp", 0.21 * avg)]
    return demand, catalog, workloads, current, quotas, budgets


def lp_relaxation_seconds(problem: Problem) -> float:
    model = build(problem)
    t0 = time.perf_counter()
    solve(problem, model, gap=0.0, time_limit=600, relax=True)
    return time.perf_counter() - t0


def run(n: int, *, detail: bool) -> dict[str, Any]:
    demand, catalog, workloads, current, quotas, budgets = make_instance(n)
    t0, c0 = time.perf_counter(), time.process_time()
    problem, notes = build_problem(
        demand, catalog, workloads, current, quantile=0.8, quotas=quotas, budgets=budgets
    )
    t1 = time.perf_counter()
    p = solve_problem(problem, quantile=0.8, max_gap=0.005, time_limit=600, notes=notes)
    t2, c2 = time.perf_counter(), time.process_time()
    from cloudbalance.plan.problem import evaluate_cloud

    x = np.zeros((len(problem.workloads), len(problem.locations), problem.horizon))
    for t, period in enumerate(p.schedule):
        for pl in period:
            x[problem.index(pl.workload), problem.locations.index(pl.location), t] = pl.replicas
    vc = np.array([w.vcpus for w in problem.workloads])
    binding = [
        f"budget {b.cloud} {evaluate_cloud(problem, x, b.cloud) / b.amount:.1%} used"
        for b in problem.budgets
    ] + [
        f"quota {q.location.key} {(x[:, j, :] * vc[:, None]).sum(axis=0).max() / q.vcpus:.1%}"
        for q in problem.quotas
        for j in [problem.locations.index(q.location)]
        if (x[:, j, :] * vc[:, None]).sum(axis=0).max() >= 0.98 * q.vcpus
    ]
    out = {
        "binding": "; ".join(binding),
        "n": n,
        "build_s": t1 - t0,
        "solve_s": t2 - t1,
        "cpu_s": c2 - c0,
        "gap": float(p.inputs["solver_gap"]),
        "plan": p.expected_cost,
        "baseline": p.baseline_cost,
        "moves": len(p.moves),
        "vars": len(build(problem).c) if detail else 0,
    }
    if detail:
        out["lp_s"] = lp_relaxation_seconds(problem)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="scaling curve up to 1,000 only")
    args = parser.parse_args()
    print(f"cores available: {os.cpu_count()}")
    r = run(500, detail=True)
    print(
        f"500 workloads x 9 locations x {PERIODS} periods, quotas + budgets active: "
        f"{r['vars']:,} variables"
    )
    print(f"  build from frames : {r['build_s']:.2f} s")
    print(
        f"  solve (gap <= 0.5%): {r['solve_s']:.2f} s, gap reached {r['gap']:.3%}, "
        f"{int(r['moves'])} moves in period 1"
    )
    print(
        f"  baseline, LP relaxation of the same model: {r['lp_s']:.2f} s "
        f"(MILP/LP time ratio {r['solve_s'] / r['lp_s']:.1f}x)"
    )
    print(
        f"  cost never moving {r['baseline']:,.0f} USD vs plan {r['plan']:,.0f} USD "
        f"(plan/baseline {r['plan'] / r['baseline']:.3f}, "
        f"saving {1 - r['plan'] / r['baseline']:.1%})"
    )
    total = r["build_s"] + r["solve_s"]
    print(f"  total {total:.2f} s: target < 20 s -> {'met' if total < 20 else 'NOT met'}")
    print("scaling (build + solve, gap <= 0.5%):")
    sizes = [100, 250, 500, 1000] + ([] if args.quick else [2000, 5000])
    first = None
    for n in sizes:
        s = r if n == 500 else run(n, detail=False)
        t = s["build_s"] + s["solve_s"]
        first = first or (t / n)
        print(
            f"  {n:>5} workloads: {t:7.2f} s (CPU {s['cpu_s']:.2f} s; build {s['build_s']:.2f}, "
            f"solve {s['solve_s']:.2f},"
            f" gap {s['gap']:.3%}), {t / n * 1000:.1f} ms/workload, "
            f"{t / n / first:.2f}x the per-workload time at {sizes[0]}"
        )
        print(f"         binding: {s['binding'] or 'none'}")


if __name__ == "__main__":
    main()
