"""Spike warnings scored ahead of time: cloudbalance vs plain Prophet vs seasonal naive.

The rule (the same for every method): at a forecast origin, a day ahead is a **spike** when it
exceeds 1.25x the median of the 28 days before the origin. At rolling origins each method
forecasts 14 days ahead and warns for the days it expects above that line:

- ``cloudbalance``: ``forecast(...)`` with its default pipeline; the warning is the forecast
  frame's ``spike`` column (its default relative rule is this one: +25% over the median of the
  last four weeks, with the probability cut chosen per series from its backtests);
- ``prophet``: ``Prophet().fit(history)`` then ``predict`` over the 14 days; warns where
  ``yhat`` is above the line (measured in this run);
- ``seasonal naive``: last week repeated, the same way.

Scores over every (origin, day ahead): precision (share of warnings that were spikes), recall
(share of spikes warned), F1, false warnings per origin, and the mean lead time (days between
the origin and a spike that was warned).

Data: ``../shared/data/telemetry/daily/pedestrians.csv`` (daily counts with a regime change),
the NAB tweet volumes summed to days, and the bundled sample's daily cost per workload (with
its month-end batch). The telemetry is read in place, never copied.

Run: ``python benchmarks/spike_warnings.py [--step 14] [--telemetry ../shared/data/telemetry]``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TELEMETRY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "telemetry"
HORIZON = 14
LOOKBACK = 28
MARGIN = 0.25
TWEETS = ["AAPL", "AMZN", "CRM", "CVS", "FB", "GOOG", "IBM", "KO", "PFE", "UPS"]


@dataclass
class Score:
    """Counts of one method on one dataset."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    origins: int = 0
    leads: list[int] = field(default_factory=list)

    def add(self, warned: np.ndarray, spike: np.ndarray) -> None:
        self.tp += int((warned & spike).sum())
        self.fp += int((warned & ~spike).sum())
        self.fn += int((~warned & spike).sum())
        self.origins += 1
        self.leads += [int(i) + 1 for i in np.flatnonzero(warned & spike)]

    def row(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": p,
            "recall": r,
            "f1": f1,
            "spikes": self.tp + self.fn,
            "false_per_origin": self.fp / max(self.origins, 1),
            "lead_days": float(np.mean(self.leads)) if self.leads else float("nan"),
        }


def datasets(telemetry: Path = TELEMETRY) -> dict[str, dict[str, pd.Series]]:
    """Daily series per dataset (name -> {series id -> values indexed by day})."""
    out: dict[str, dict[str, pd.Series]] = {}
    ped = pd.read_csv(telemetry / "daily" / "pedestrians.csv", parse_dates=["ds"])
    out["pedestrians"] = {"pedestrians": ped.set_index("ds")["y"].resample("1D").mean()}
    tweets = {}
    for t in TWEETS:
        d = pd.read_csv(
            telemetry / "nab" / f"realTweets_Twitter_volume_{t}.csv", parse_dates=["timestamp"]
        )
        day = d.set_index("timestamp")["value"].resample("1D").sum()
        tweets[t] = day.iloc[1:-1]  # the first and last days are partial
    out["tweets (daily)"] = tweets
    from cloudbalance.demo.sample import generate_sample
    from cloudbalance.series import cost_series

    costs = generate_sample().costs
    series = cost_series(costs, include_unattributed=True)
    out["sample costs"] = {
        str(uid): g.set_index("ds")["y"].asfreq("D") for uid, g in series.groupby("unique_id")
    }
    return out


def origins(n: int, step: int, first: int) -> Iterator[int]:
    """Origins (index of the first day ahead) from ``first``, every ``step``, newest last."""
    last = n - HORIZON
    yield from range(last, first - 1, -step)


def threshold(history: pd.Series) -> float:
    return float(np.nanmedian(history.to_numpy(dtype=np.float64)[-LOOKBACK:])) * (1 + MARGIN)


def plain_prophet(history: pd.Series) -> np.ndarray:
    from prophet import Prophet

    df = pd.DataFrame({"ds": history.index, "y": history.to_numpy(dtype=np.float64)})
    model = Prophet()
    model.fit(df.dropna())
    future = model.make_future_dataframe(HORIZON, include_history=False)
    yhat: np.ndarray = model.predict(future)["yhat"].to_numpy()
    return yhat


def seasonal_naive(history: pd.Series) -> np.ndarray:
    last = history.ffill().to_numpy(dtype=np.float64)[-7:]
    return np.array([last[j % 7] for j in range(HORIZON)])


def score_dataset(series: dict[str, pd.Series], step: int) -> dict[str, Score]:
    from cloudbalance.forecast import ForecastResult, forecast

    cases: list[tuple[str, pd.Series, np.ndarray, float]] = []
    for uid, s in series.items():
        first = max(LOOKBACK, min(365, len(s) // 2))
        for o in origins(len(s), step, first):
            hist, ahead = s.iloc[:o], s.iloc[o : o + HORIZON].to_numpy(dtype=np.float64)
            cases.append((f"{uid}@{o}", hist, ahead, threshold(hist)))
    scores = {"cloudbalance": Score(), "prophet": Score(), "seasonal naive": Score()}
    t0 = time.perf_counter()
    frame = pd.concat(
        pd.DataFrame({"unique_id": key, "ds": h.index, "y": h.to_numpy(dtype=np.float64)})
        for key, h, _, _ in cases
    )
    res = forecast(frame, horizon=HORIZON, return_accuracy=True, errors="skip")
    assert isinstance(res, ForecastResult)
    fc = res.forecast.set_index("unique_id")
    t_cb = time.perf_counter() - t0
    t0 = time.perf_counter()
    for key, hist, ahead, line in cases:
        spike = np.nan_to_num(ahead, nan=-np.inf) > line
        if key in fc.index:
            warned_cb = fc.loc[[key], "spike"].to_numpy(dtype=bool)[:HORIZON]
        else:
            warned_cb = np.zeros(HORIZON, dtype=bool)
        scores["cloudbalance"].add(warned_cb, spike)
        scores["prophet"].add(plain_prophet(hist) > line, spike)
        scores["seasonal naive"].add(seasonal_naive(hist) > line, spike)
    t_rest = time.perf_counter() - t0
    print(f"  {len(cases)} origins; cloudbalance {t_cb:.0f}s, prophet + naive {t_rest:.0f}s")
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=14, help="Days between origins.")
    ap.add_argument(
        "--telemetry", type=Path, default=TELEMETRY, help="The shared telemetry folder."
    )
    args = ap.parse_args()
    import prophet  # noqa: F401  (imported first: it sets up the loggers silenced below)

    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger(name).disabled = True
    warnings.simplefilter("ignore")
    pd.set_option("display.width", 140)
    rows = []
    for name, series in datasets(args.telemetry).items():
        print(f"## {name}")
        step = args.step if name == "pedestrians" else max(3, args.step // 4)
        for method, score in score_dataset(series, step).items():
            rows.append({"dataset": name, "method": method, **score.row()})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for name, part in table.groupby("dataset", sort=False):
        f1 = part.set_index("method")["f1"]
        ratio = f"{f1['cloudbalance'] / f1['prophet']:.2f}" if f1["prophet"] > 0 else "n/a"
        print(
            f"{name}: F1 cloudbalance {f1['cloudbalance']:.2f} vs plain Prophet "
            f"{f1['prophet']:.2f} (ratio {ratio})"
        )


if __name__ == "__main__":
    main()
