"""Alerts per point that hold whatever the sampling interval, and the kind of each incident."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.forecast import anomaly_events, detect_anomalies
from cloudbalance.forecast.anomalies import ESCALATION, Incident, _budget, _incidents


def _heavy_tailed(freq: str, periods: int, seed: int) -> pd.DataFrame:
    """A seasonal cycle plus Student-t noise (3 degrees of freedom), and no anomaly at all."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=periods, freq=freq)
    if freq == "D":
        phase = 2 * np.pi * ds.day_of_week.to_numpy() / 7
    else:
        phase = 2 * np.pi * ds.hour.to_numpy() / 24
    y = np.maximum(100 + 30 * np.sin(phase) + 5 * rng.standard_t(3, periods), 0.0)
    return pd.DataFrame({"unique_id": f"{freq}-{seed}", "ds": ds, "y": y})


@pytest.mark.parametrize(("freq", "periods"), [("h", 24 * 56), ("D", 730)])
def test_heavy_tailed_noise_alerts_rarely_per_point_at_hourly_and_daily_intervals(
    freq: str, periods: int
) -> None:
    # a budget of one alert a week is 6 per 1,000 points of hourly data, 143 of daily data
    series = pd.concat([_heavy_tailed(freq, periods, seed) for seed in range(3)])
    flagged = int(detect_anomalies(series)["anomaly"].sum())
    assert 1000 * flagged / len(series) <= 2.5


def _incident(start: int, impact: float) -> Incident:
    return Incident(start=start, end=start, peak=start, severity=1.0, impact=impact)


def test_past_the_free_alerts_each_one_must_be_twice_as_extreme_as_the_last() -> None:
    group = [_incident(k, impact) for k, impact in enumerate((50.0, 40.0, 30.0, 20.0, 10.0))]
    strength = {0: 1.0, 1: 1.9, 2: 2.5, 3: 3.9, 4: 4.1}  # times the bar, by start
    kept = _budget(group, free=1, strength=lambda inc: strength[inc.start])
    # 40 is below twice the bar; 30 reaches it; 20 is below four times; 10 reaches it
    assert [inc.start for inc in kept] == [0, 2, 4]
    assert ESCALATION == 2.0
    # no weekly cap: far-out incidents are all told (each reaches 2, 4, 8, 16 times its bar),
    # however many the noise has already used up
    far = _budget(group, free=1, strength=lambda inc: 100.0)
    assert [inc.start for inc in far] == [0, 1, 2, 3, 4]


def test_the_free_budget_counts_observed_points_not_only_weeks() -> None:
    # four weeks of hourly data (672 points): four weekly alerts, but one per 1,000 points
    score = np.zeros(672)
    expected = np.full(672, 10.0)
    y = expected.copy()
    for k, at in enumerate((100, 250, 400, 550)):
        score[at], y[at] = 7.0, 10.0 + 10 * (k + 1)  # each just beyond the bar of 6
    common = {"threshold": 6.0, "low": 4.0, "cooldown": 0, "weeks": 4.0}
    assert len(_incidents(score, y, expected, **common)) == 4  # weeks alone: 6 per 1,000
    kept = _incidents(score, y, expected, points=672, **common)
    assert [inc.start for inc in kept] == [550]  # the one that cost most
    score[250] = 13.0  # twice the bar: extreme enough to be told as well
    kept = _incidents(score, y, expected, points=672, **common)
    assert [inc.start for inc in kept] == [250, 550]


def test_gaps_do_not_count_as_points_of_the_budget() -> None:
    # ten weeks of 10-minute data of which a quarter is observed: budgeted on what was seen
    n = 10 * 7 * 144
    score = np.zeros(n)
    expected = np.full(n, 10.0)
    y = expected.copy()
    for k, at in enumerate(range(1000, n, 1000)):
        score[at], y[at] = 7.0, 20.0 + k
    common = {"threshold": 6.0, "low": 4.0, "cooldown": 0, "weeks": 10.0}
    assert len(_incidents(score, y, expected, points=n // 4, **common)) == 3
    assert len(_incidents(score, y, expected, points=n, **common)) == 10


def test_each_incident_carries_its_kind_in_the_frame_and_the_events() -> None:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2024-03-01", periods=288 * 21, freq="5min")
    hour = ds.hour.to_numpy() + ds.minute.to_numpy() / 60
    y = 100 + 30 * np.sin(2 * np.pi * hour / 24) + 5 * rng.normal(0, 1, ds.size)
    y[288 * 6 + 40] += 60  # a spike
    shifted = slice(288 * 12, 288 * 12 + 96)
    y[shifted] += 2.2 * 5  # eight hours a little higher: a shift, no point beyond the bar
    out = detect_anomalies(pd.DataFrame({"unique_id": "api", "ds": ds, "y": y}))
    assert out.columns.tolist()[6:9] == ["anomaly_id", "anomaly_kind", "impact"]
    assert out["anomaly_kind"].notna().tolist() == out["anomaly_id"].notna().tolist()
    events = anomaly_events(out)
    assert events.columns.tolist()[:3] == ["anomaly_id", "unique_id", "anomaly_kind"]
    kind = dict(zip(events["start"], events["anomaly_kind"], strict=True))
    assert kind[ds[288 * 6 + 40]] == "spike"
    starts = [s for s, k in kind.items() if k == "shift"]
    assert len(starts) == 1
    assert ds[shifted.start] - pd.Timedelta(hours=1) <= starts[0] <= ds[shifted.stop - 1]


def test_an_empty_frame_has_the_kind_column() -> None:
    empty = detect_anomalies(pd.DataFrame({"unique_id": [], "ds": [], "y": []}))
    assert "anomaly_kind" in empty.columns
    assert anomaly_events(empty).columns.tolist()[2] == "anomaly_kind"
