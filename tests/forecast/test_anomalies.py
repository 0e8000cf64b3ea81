from __future__ import annotations

import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast import detect_anomalies


def test_injected_spike_credit_and_zero_day_are_flagged_and_nothing_else(make_series) -> None:
    series = make_series(n=120, slope=0.1, weekly=10, noise=1, seed=4)
    series.loc[30, "y"] += 120  # runaway job
    series.loc[60, "y"] = -200.0  # a credit
    series.loc[90, "y"] = 0.0  # billing pipeline dropped a day
    out = detect_anomalies(series)
    assert list(out.columns[:5]) == ["unique_id", "ds", "y", "anomaly", "score"]
    flagged = set(out.index[out["anomaly"]])
    assert flagged == {30, 60, 90}
    assert out.loc[30, "score"] > 0 > out.loc[60, "score"]


def test_flat_series_with_one_jump_flags_only_the_jump() -> None:
    ds = pd.date_range("2024-01-01", periods=40, freq="D")
    y = [10.0] * 40
    y[25] = 11.0
    out = detect_anomalies(pd.DataFrame({"unique_id": "f", "ds": ds, "y": y}))
    assert out.index[out["anomaly"]].tolist() == [25]


def test_hourly_series_and_gaps_are_handled(make_series) -> None:
    series = make_series(n=24 * 14, freq="h", weekly=0, daily=20, noise=1, seed=1)
    series.loc[200, "y"] += 80
    series = series.drop(index=range(100, 110))
    out = detect_anomalies(series)
    assert len(out) == len(series)  # gaps are not rows
    assert out.set_index("ds").loc[series.loc[200, "ds"], "anomaly"]
    assert out["anomaly"].sum() <= 3


def test_very_short_series_are_scored_zero_not_an_error() -> None:
    frame = pd.DataFrame({"unique_id": "s", "ds": ["2024-01-01", "2024-01-02"], "y": [1, 9]})
    out = detect_anomalies(frame)
    assert not out["anomaly"].any()


def test_threshold_must_be_positive(make_series) -> None:
    with pytest.raises(ForecastError, match="threshold"):
        detect_anomalies(make_series(n=20), threshold=0)
