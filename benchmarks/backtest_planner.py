"""Backtest of the planner on the bundled sample: replay the last 90 days, day by day.

Run: ``python benchmarks/backtest_planner.py [--days 90] [--horizon 7] [--quantile 0.8]
[--hold plan] [--grid]``.

Every policy starts from the same valid placement (the planner's own placement for the first
day's actual demand, so it keeps HA, max_share and residency) and is charged the same way: each
day D it decides a placement for D, which is scaled to D's actual demand at the locations it
chose, priced at D's observed prices, plus the move cost of every replica added. Reported in
the same run:

- never moving: the start placement scaled to each day's demand;
- greedy: the planner with a one-day horizon (the cheapest valid placement of the day, no
  look-ahead), fed the same forecast as the planner;
- the planner, fed a weekly seasonal-naive demand forecast written here (interval from the last
  four weeks' residuals; Prophet refits would take hours), prices observed up to D and a naive
  price forecast (persistence, interval from the last four weeks' daily changes);
- the planner fed perfect forecasts (the actual demand and the actual future prices);
- the perfect-foresight oracle: one plan over all the days with the actual demand and prices,
  under the same constraints.

and the share of the oracle's saving (over never moving) each captures. ``--grid`` replays a
small grid of horizon x minimum saving (and the per-workload hold) and prints the captured share
of each, so the defaults are chosen by the backtest, not by hand.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from cloudbalance.demo.sample import generate_sample
from cloudbalance.models import Location, Placement, Workload
from cloudbalance.plan import Catalog, plan
from cloudbalance.plan.catalog import cloud_id


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


def price_naive(known: pd.DataFrame, day: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """Prices persist, with an 80% interval from the last four weeks' daily changes.

    What the loop's price forecast gives the planner: a level and how far it may move, so a
    move that only chases today's spot price carries its uncertainty.
    """
    rows = []
    recent = known[known["observed_at"] > day - timedelta(days=29)]
    for (provider, region, sku, kind), group in recent.groupby(
        ["ProviderName", "RegionId", "SkuId", "price_kind"]
    ):
        y = group.sort_values("observed_at")["unit_price"].to_numpy()
        step = float(np.std(np.diff(y))) if len(y) > 2 else 0.0
        uid = f"{cloud_id(str(provider))}:{region}:{sku}:{kind}"
        for h in range(1, horizon):
            spread = 1.2816 * step * np.sqrt(h)
            rows.append(
                {
                    "unique_id": uid,
                    "ds": day + timedelta(days=h),
                    "yhat": y[-1],
                    "yhat_lower": max(0.0, y[-1] - spread),
                    "yhat_upper": y[-1] + spread,
                    "model": "naive",
                    "interval": 0.8,
                }
            )
    return pd.DataFrame(rows)


def exact(demand: pd.DataFrame, days: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """A forecast that is the actual demand (perfect foresight)."""
    rows = demand[demand["ds"].isin(list(days))]
    y = np.ceil(rows["y"].to_numpy() - 1e-9)
    return pd.DataFrame(
        {
            "unique_id": rows["unique_id"],
            "ds": rows["ds"],
            "yhat": y,
            "yhat_lower": y,
            "yhat_upper": y,
            "model": "actual",
            "interval": 0.8,
        }
    )


def price_truth(prices: pd.DataFrame, after: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    """The actual future prices as a price forecast (perfect foresight)."""
    rows = prices[(prices["observed_at"] > after) & (prices["observed_at"] <= until)]
    uid = (
        rows["ProviderName"].map(cloud_id)
        + ":"
        + rows["RegionId"]
        + ":"
        + rows["SkuId"]
        + ":"
        + rows["price_kind"]
    )
    return pd.DataFrame(
        {
            "unique_id": uid,
            "ds": rows["observed_at"],
            "yhat": rows["unit_price"],
            "yhat_lower": rows["unit_price"],
            "yhat_upper": rows["unit_price"],
            "model": "actual",
            "interval": 0.8,
        }
    )


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


class Replay:
    """The sample, the days replayed and the shared accounting of every policy."""

    def __init__(self, days: int) -> None:
        sample = generate_sample()
        self.workloads: list[Workload] = list(sample.workloads)
        self.prices = sample.prices
        self.demand = sample.demand
        all_days = pd.DatetimeIndex(sorted(self.demand["ds"].unique()))
        self.days = all_days[-days:]
        full = Catalog.from_frame(self.prices)
        self.locs: tuple[Location, ...] = full.locations
        self.cost = {
            w.name: full.replica_cost(
                vcpus=w.vcpus,
                memory_gib=w.memory_gib,
                spot=w.spot,
                periods=list(self.days),
                period="1D",
                locations=self.locs,
            ).cost
            for w in self.workloads
        }
        self.actual = {
            w.name: np.ceil(
                self.demand[self.demand["unique_id"] == w.name]
                .set_index("ds")["y"]
                .reindex(self.days)
                .to_numpy()
                - 1e-9
            )
            for w in self.workloads
        }
        first = plan(
            exact(self.demand, self.days[:1]),
            self.prices[self.prices["observed_at"] <= self.days[0]],
            self.workloads,
            quantile=0.5,
            horizon=1,
        )
        self.start = self.as_arrays(first.first_period)

    def as_arrays(self, placements: Sequence[Placement]) -> dict[str, np.ndarray]:
        out = {w.name: np.zeros(len(self.locs)) for w in self.workloads}
        for p in placements:
            out[p.workload][self.locs.index(p.location)] += p.replicas
        return out

    def placements(self, state: dict[str, np.ndarray]) -> list[Placement]:
        return [
            Placement(name, self.locs[j], int(n))
            for name, alloc in state.items()
            for j, n in enumerate(alloc)
            if n > 0
        ]

    def charge(
        self, state: dict[str, np.ndarray], decided: dict[str, np.ndarray], d: int
    ) -> tuple[float, int]:
        """Pay day ``d`` for ``decided`` scaled to the actual demand; update ``state``."""
        total, moves = 0.0, 0
        for w in self.workloads:
            alloc = scale(decided[w.name], int(self.actual[w.name][d]))
            cost = np.nan_to_num(self.cost[w.name][:, d], nan=0.0)
            before = state[w.name]
            added = np.maximum(0, alloc - before)
            moves += int(np.count_nonzero(added[before == 0]))
            total += float((alloc * cost).sum()) + float(added.sum() * w.move_cost)
            state[w.name] = alloc
        return total, moves


def run_policy(
    r: Replay,
    kind: str,
    *,
    horizon: int,
    quantile: float,
    hold: str,
    min_saving_pct: float = 0.0,
) -> tuple[float, int]:
    """Replay one policy: ``never``, ``greedy``, ``planner`` or ``perfect``."""
    state = dict(r.start)
    total, moves = 0.0, 0
    for d, day in enumerate(r.days):
        if kind == "never":
            decided = r.start
        else:
            h = 1 if kind == "greedy" else horizon
            known = r.prices[r.prices["observed_at"] <= day]
            span = r.days[d : d + h]
            if kind == "perfect":
                fc = exact(r.demand, span)
                future = price_truth(r.prices, day, span[-1])
                q = 0.5
            else:
                fc = seasonal_naive(r.demand[r.demand["ds"] < day], day, h)
                future, q = price_naive(known, day, h), quantile
            result = plan(
                fc,
                known,
                r.workloads,
                r.placements(state),
                quantile=q,
                price_forecast=future if future is not None and len(future) else None,
                horizon=h,
                hold="workload" if hold == "workload" else "plan",
                min_saving_pct=min_saving_pct,
                time_limit=60,
            )
            decided = r.as_arrays(result.first_period)
        paid, moved = r.charge(state, decided, d)
        total += paid
        moves += moved
    return total, moves


def run_oracle(r: Replay) -> tuple[float, int]:
    """One plan over every day with the actual demand and prices: perfect foresight."""
    result = plan(
        exact(r.demand, r.days),
        r.prices[r.prices["observed_at"] <= r.days[-1]],
        r.workloads,
        r.placements(r.start),
        quantile=0.5,
        horizon=len(r.days),
        max_gap=0.001,
        time_limit=600,
    )
    state = dict(r.start)
    total, moves = 0.0, 0
    for d in range(len(r.days)):
        paid, moved = r.charge(state, r.as_arrays(result.schedule[d]), d)
        total += paid
        moves += moved
    return total, moves


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--horizon", type=int, default=7)
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--hold", choices=("plan", "workload"), default="plan")
    parser.add_argument("--min-saving-pct", type=float, default=0.0, help="fraction of cost")
    parser.add_argument("--grid", action="store_true", help="replay a grid of settings")
    args = parser.parse_args()
    r = Replay(args.days)
    print(
        f"replayed {len(r.days)} days ({r.days[0]:%Y-%m-%d} .. {r.days[-1]:%Y-%m-%d}), "
        f"{len(r.workloads)} workloads, {len(r.locs)} locations; start: the planner's valid "
        "placement for the first day"
    )
    t0 = time.perf_counter()
    oracle, oracle_moves = run_oracle(r)
    never, never_moves = run_policy(r, "never", horizon=1, quantile=0.5, hold="plan")
    rows: list[tuple[str, float, int]] = [
        ("never moving", never, never_moves),
    ]
    settings = [(args.horizon, args.quantile, args.hold, args.min_saving_pct)]
    if args.grid:
        settings = list(itertools.product((3, 7, 14), (args.quantile,), ("plan",), (0.0, 0.01)))
        settings += [(args.horizon, args.quantile, "workload", args.min_saving_pct)]
    greedy, greedy_moves = run_policy(r, "greedy", horizon=1, quantile=args.quantile, hold="plan")
    rows.append((f"greedy (horizon 1, quantile {args.quantile:g})", greedy, greedy_moves))
    for h, q, hold, pct in settings:
        total, moved = run_policy(
            r, "planner", horizon=h, quantile=q, hold=hold, min_saving_pct=pct
        )
        label = f"planner (horizon {h}, q {q:g}, hold {hold}, min {pct:.0%})"
        rows.append((label, total, moved))
    perfect, perfect_moves = run_policy(
        r, "perfect", horizon=args.horizon, quantile=0.5, hold=args.hold
    )
    rows.append((f"planner, perfect forecasts (horizon {args.horizon})", perfect, perfect_moves))
    rows.append(("perfect-foresight oracle", oracle, oracle_moves))
    elapsed = time.perf_counter() - t0
    room = never - oracle
    print(f"time: {elapsed:.1f} s")
    print(f"  {'policy':55s} {'total USD':>12s} {'moves':>6s} {'captured':>9s}")
    for label, total, moved in rows:
        share = (never - total) / room if room > 0 else float("nan")
        print(f"  {label:55s} {total:12,.2f} {moved:6d} {share:9.1%}")
    print("captured = (never moving - policy) / (never moving - oracle); target >= 65%")


if __name__ == "__main__":
    main()
