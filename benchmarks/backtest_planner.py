"""Backtest of the planner on the bundled sample: replay the last 90 days, day by day.

Run: ``python benchmarks/backtest_planner.py [--days 90] [--horizon 7]``.

Each day D: forecast each workload's demand for D..D+horizon-1 from data before D (a weekly
seasonal-naive forecast written here, with an interval from the last four weeks' residuals, so
the replay takes seconds rather than the hours Prophet refits would), plan with prices observed up
to D, apply the first period, and pay the realised prices of day D for the realised demand
(replicas scaled in proportion at the planned locations) plus move costs. Compared with (a) never
moving (the starting placement scaled to demand) and (b) moving greedily, each day, everything to
the cheapest allowed location of that day. Prints the three totals and the number of moves.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
import pandas as pd

from cloudbalance.plan.catalog import Catalog
from cloudbalance.demo.sample import generate_sample
from cloudbalance.models import Placement
from cloudbalance.plan import plan


def seasonal_naive(history: pd.DataFrame, start: pd.Timestamp, horizon: int) -> pd.DataFrame:
    rows = []
    for uid, group in history.groupby("unique_id"):
        y = group.set_index("ds")["y"].sort_index()
        last_week = y.iloc[-7:].to_numpy()
        resid = (y.iloc[-28:].to_numpy() - y.iloc[-35:-7].to_numpy()) if len(y) >= 35 else [0.0]
        spread = 1.2816 * float(np.std(resid))  # 80% interval
        for h in range(horizon):
            value = float(last_week[h % 7])
            rows.append(
                {
                    "unique_id": uid,
                    "ds": start + timedelta(days=h),
                    "yhat": value,
                    "yhat_lower": max(0.0, value - spread),
                    "yhat_upper": value + spread,
                    "model": "seasonal_naive",
                    "interval": 0.8,
                }
            )
    return pd.DataFrame(rows)


def scale(alloc: np.ndarray, want: int) -> np.ndarray:
    total = alloc.sum()
    if total <= 0:
        return alloc
    raw = alloc / total * want
    out = np.floor(raw)
    rest = int(want - out.sum())
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--horizon", type=int, default=7)
    args = parser.parse_args()
    sample = generate_sample()
    workloads = list(sample.workloads)
    prices = sample.prices
    demand = sample.demand
    all_days = pd.DatetimeIndex(sorted(demand["ds"].unique()))
    days = all_days[-args.days :]
    full = Catalog.from_frame(prices)
    locs = full.locations
    # Realised cost of one replica per workload, location and day (the day's observed price).
    realised = {
        w.name: full.replica_cost(
            vcpus=w.vcpus,
            memory_gib=w.memory_gib,
            spot=w.spot,
            periods=list(days),
            period="1D",
            locations=locs,
        ).cost
        for w in workloads
    }
    actual = {
        w.name: np.ceil(
            demand[demand["unique_id"] == w.name].set_index("ds")["y"].reindex(days).to_numpy()
            / w.demand_per_replica
        )
        for w in workloads
    }
    allowed = {
        w.name: np.array([(not w.allowed) or (loc in w.allowed) for loc in locs]) for w in workloads
    }
    start = {}
    for w in workloads:
        alloc = np.zeros(len(locs))
        alloc[int(np.flatnonzero(allowed[w.name])[0])] = actual[w.name][0]
        start[w.name] = alloc
    state = {"plan": dict(start), "never": dict(start), "greedy": dict(start)}
    total = {k: 0.0 for k in state}
    moves = {k: 0 for k in state}
    t0 = time.perf_counter()
    for d, day in enumerate(days):
        history = demand[demand["ds"] < day]
        fc = seasonal_naive(history, day, args.horizon)
        known = prices[prices["observed_at"] <= day]
        current = [
            Placement(w.name, locs[j], int(n))
            for w in workloads
            for j, n in enumerate(state["plan"][w.name])
            if n > 0
        ]
        result = plan(
            fc,
            known,
            workloads,
            current,
            quantile=0.8,
            horizon=args.horizon,
            min_saving_pct=0.5,
        )
        decided = {w.name: np.zeros(len(locs)) for w in workloads}
        for p in result.first_period:
            decided[p.workload][locs.index(p.location)] = p.replicas
        for w in workloads:
            need = int(actual[w.name][d])
            cost = np.nan_to_num(realised[w.name][:, d], nan=np.inf)
            cheapest = np.zeros(len(locs))
            cheapest[int(np.argmin(np.where(allowed[w.name], cost, np.inf)))] = need
            targets = {
                "plan": scale(decided[w.name], need),
                "never": scale(start[w.name], need),
                "greedy": cheapest,
            }
            for k, alloc in targets.items():
                before = state[k][w.name]
                added = np.maximum(0, alloc - before)
                moves[k] += int(np.count_nonzero(added[before == 0]))
                total[k] += float((alloc * np.where(alloc > 0, cost, 0)).sum())
                total[k] += float(added.sum() * w.move_cost)
                state[k][w.name] = alloc
    elapsed = time.perf_counter() - t0
    print(
        f"replayed {len(days)} days ({days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}), "
        f"{len(workloads)} workloads, {len(locs)} locations, horizon {args.horizon} days, "
        "forecast: seasonal naive (weekly) in this script"
    )
    print(f"planner + replay time: {elapsed:.1f} s ({elapsed / len(days):.2f} s/day)")
    for k, label in (
        ("never", "(a) never moving"),
        ("greedy", "(b) greedy cheapest of the day"),
        ("plan", "planner"),
    ):
        print(
            f"  {label:32s} total {total[k]:12,.2f} USD  moves (new locations) {moves[k]:4d}"
            f"  ratio to never-moving {total[k] / total['never']:.3f}"
        )


if __name__ == "__main__":
    main()
