"""Anomaly false alarms per sampling interval: does the alert rate hold at 5 minutes, hourly, daily?

The shared scorer (``../shared/data/telemetry/score_anomalies.py``) counts, over all series at once,
window recall, flagged points outside every labelled window per 1,000 points (false alarms) and
the share of flagged points inside a window (precision). A detector whose alert budget is set in
calendar time alerts six times as often per point on hourly data as on 5-minute data, which the
total hides when most points are 5-minute. This benchmark counts the same way, grouped by each
series' sampling interval, calling :func:`cloudbalance.forecast.detect_anomalies` in-process (the
CLI's call), and adds what the labelled set has no example of:

- **labelled**: NAB's series in the telemetry folder (read in place, never copied), by interval;
- **noise**: unlabelled synthetic series with no anomaly at all (a daily cycle with Student-t
  noise of 3 degrees of freedom, heavy tails; a weekly one for daily data), eight weeks of
  5-minute and hourly data and two years of daily data: every flagged point is a false alarm.
  Alerts per 1,000 points should not depend on the interval.

Detection seconds are measured in the same run (all labelled series, one call).

Run: ``python benchmarks/anomaly_intervals.py [--telemetry ../shared/data/telemetry]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cloudbalance.forecast import detect_anomalies

TELEMETRY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "telemetry"


def labelled(folder: Path) -> tuple[pd.DataFrame, dict[str, list[list[str]]]]:
    """NAB's labelled series as one ``unique_id, ds, y`` frame, and their windows."""
    labels: dict[str, list[list[str]]] = json.loads((folder / "labels.json").read_text())
    frames = []
    for key in labels:
        d = pd.read_csv(folder / key.replace("/", "_"), parse_dates=["timestamp"])
        frames.append(pd.DataFrame({"unique_id": key, "ds": d["timestamp"], "y": d["value"]}))
    return pd.concat(frames, ignore_index=True), labels


def interval(ds: pd.Series) -> pd.Timedelta:
    """The series' median step."""
    return pd.Timedelta(pd.Series(pd.to_datetime(ds)).sort_values().diff().median())


def score(
    flags: pd.DataFrame, windows: dict[str, list[list[str]]], points: dict[str, int]
) -> tuple[int, int, int, int, int]:
    """Windows hit, windows, false alarm points, flagged points, points (the scorer's counting)."""
    hit = total = fp = flagged_n = n = 0
    for key, n_key in points.items():
        o = flags[flags["unique_id"] == key]
        flagged = pd.to_datetime(o.loc[o["anomaly"], "ds"])
        inside = np.zeros(len(flagged), dtype=bool)
        for s, e in windows.get(key, []):
            m = ((flagged >= pd.Timestamp(s)) & (flagged <= pd.Timestamp(e))).to_numpy()
            inside |= m
            hit += bool(m.any())
        total += len(windows.get(key, []))
        fp += int((~inside).sum())
        flagged_n += len(flagged)
        n += n_key
    return hit, total, fp, flagged_n, n


def noise(freq: str, periods: int, seeds: int = 8) -> pd.DataFrame:
    """Heavy-tailed noise around a seasonal cycle, no anomaly: every alert is a false alarm."""
    frames = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ds = pd.date_range("2024-01-01", periods=periods, freq=freq)
        if freq == "D":
            phase = 2 * np.pi * ds.day_of_week.to_numpy() / 7
        else:
            phase = 2 * np.pi * (ds.hour.to_numpy() + ds.minute.to_numpy() / 60) / 24
        y = np.maximum(100 + 30 * np.sin(phase) + 5 * rng.standard_t(3, periods), 0.0)
        frames.append(pd.DataFrame({"unique_id": f"noise-{freq}-{seed}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--telemetry", type=Path, default=TELEMETRY, help="The telemetry folder.")
    args = ap.parse_args()
    folder: Path = args.telemetry / "nab"
    if not (folder / "labels.json").is_file():
        sys.exit(f"no nab/labels.json in {args.telemetry}; pass --telemetry DIR")
    df, windows = labelled(folder)
    start = time.perf_counter()
    flags = detect_anomalies(df)
    took = time.perf_counter() - start
    steps = {str(key): interval(g["ds"]) for key, g in df.groupby("unique_id")}
    sizes = {str(k): int(v) for k, v in df.groupby("unique_id").size().items()}
    print("| set | interval | series | points | recall | false alarms / 1,000 | precision |")
    print("|---|---|---|---|---|---|---|")
    for step in [*sorted(set(steps.values())), None]:
        points = {k: v for k, v in sizes.items() if step is None or steps[k] == step}
        label = "all" if step is None else pd.tseries.frequencies.to_offset(step).freqstr
        hit, total, fp, flagged_n, n = score(flags, windows, points)
        prec = (flagged_n - fp) / flagged_n if flagged_n else 0.0
        print(
            f"| labelled | {label} | {len(points)} | {n} | {hit / total:.2f} ({hit}/{total}) "
            f"| {1000 * fp / n:.2f} | {prec:.2f} |"
        )
    for freq, periods in (("5min", 288 * 56), ("h", 24 * 56), ("D", 730)):
        series = noise(freq, periods)
        found = detect_anomalies(series)
        points = {str(k): int(v) for k, v in found.groupby("unique_id").size().items()}
        _, _, fp, _, n = score(found, {}, points)
        print(f"| noise | {freq} | {len(points)} | {n} | - | {1000 * fp / n:.2f} | - |")
    print(f"\ndetection of the labelled set: {took:.1f} s ({len(df)} points)")


if __name__ == "__main__":
    main()
