from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast import anomaly_events, detect_anomalies


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


def _month_end_batch(months: int = 8, factor: float = 3.2, seed: int = 0) -> pd.DataFrame:
    """Daily cost with a weekly cycle and a batch on the last two days of every month."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2025-01-01", periods=months * 30, freq="D")
    y = 100 + 10 * np.sin(2 * np.pi * np.arange(ds.size) / 7) + rng.normal(0, 3, ds.size)
    batch = ds.is_month_end | (ds + pd.Timedelta(days=1)).is_month_end
    y = np.where(batch, y * factor, y)
    return pd.DataFrame({"unique_id": "etl", "ds": ds, "y": y})


def test_recurring_month_end_batch_is_expected_not_flagged() -> None:
    series = _month_end_batch()
    out = detect_anomalies(series)
    assert not out["anomaly"].any()
    # the expectation carries the batch instead
    batch = out[out["ds"].dt.is_month_end]
    assert (batch["expected"] > 2 * out["expected"].median()).all()


def test_a_batch_that_runs_away_at_month_end_is_still_flagged() -> None:
    series = _month_end_batch()
    last = series.index[series["ds"].dt.is_month_end][-2]
    series.loc[last, "y"] *= 3
    out = detect_anomalies(series)
    assert out.loc[out["anomaly"], "ds"].tolist() == [series.loc[last, "ds"]]


def _quarterly_credit(months: int = 24, seed: int = 0) -> pd.DataFrame:
    """Daily cost with a weekly cycle and a credit on the 15th of every third month."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-11-01", periods=months * 30, freq="D")
    y = 100 + 10 * np.sin(2 * np.pi * np.arange(ds.size) / 7) + rng.normal(0, 3, ds.size)
    credit = (ds.day == 15) & (ds.month % 3 == 0)
    return pd.DataFrame({"unique_id": "aws", "ds": ds, "y": np.where(credit, y - 120, y)})


def test_recurring_quarterly_credit_is_expected_not_flagged() -> None:
    series = _quarterly_credit()
    out = detect_anomalies(series)
    assert not out["anomaly"].any()
    credit = out[(out["ds"].dt.day == 15) & (out["ds"].dt.month % 3 == 0)]
    assert (credit["expected"] < 0).all()


def test_a_bump_on_the_same_day_of_a_few_months_is_not_learned() -> None:
    # three months with a spike on the 20th: a coincidence the history cannot call a pattern
    series = _month_end_batch(months=12, factor=1.0)
    hits = series.index[series["ds"].dt.day == 20][:3]
    series.loc[hits, "y"] *= 2.5
    out = detect_anomalies(series)
    assert set(series.loc[hits, "ds"]) <= set(out.loc[out["anomaly"], "ds"])


def test_level_shift_is_one_incident_not_every_day_after_it(make_series) -> None:
    series = make_series(n=200, slope=0, weekly=10, noise=1, seed=2)
    series.loc[120:, "y"] += 60
    out = detect_anomalies(series)
    events = anomaly_events(out)
    assert len(events[events["anomaly"]]) <= 1
    assert out["anomaly"].sum() <= 7


def test_heavy_tailed_noise_does_not_flood(make_series) -> None:
    rng = np.random.default_rng(7)
    series = make_series(n=24 * 60, freq="h", weekly=0, daily=20, noise=0, seed=1)
    series["y"] = np.maximum(series["y"] + 3 * rng.standard_t(3, len(series)), 0)
    series.loc[700:705, "y"] += 150  # one real incident
    out = detect_anomalies(series)
    events = anomaly_events(out)
    flagged = events[events["anomaly"]]
    assert 1 <= len(flagged) <= 3
    assert flagged["start"].iloc[0] <= series.loc[705, "ds"]
    assert out["anomaly"].mean() < 0.01


def test_incidents_carry_money_impact_and_are_ranked_by_it(make_series) -> None:
    series = make_series(n=120, slope=0, weekly=0, noise=1, seed=4)
    series.loc[30, "y"] += 40
    series.loc[80:82, "y"] += 70
    events = anomaly_events(detect_anomalies(series))
    assert events["anomaly_id"].tolist() == [
        f"s@{series.loc[80, 'ds']:%Y-%m-%d}",
        f"s@{series.loc[30, 'ds']:%Y-%m-%d}",
    ]
    assert events["impact"].iloc[0] == pytest.approx(210, rel=0.05)
    assert events["points"].iloc[0] == 3


def test_alert_budget_keeps_the_most_severe_incidents_of_a_bursty_series(make_series) -> None:
    series = make_series(n=24 * 28, freq="h", weekly=0, daily=10, noise=1, seed=5)
    bursts = np.arange(20) * 30 + 15  # 20 bursts in 4 weeks, growing in size
    for k, pos in enumerate(bursts):
        series.loc[pos, "y"] += 20 + 5 * k
    events = anomaly_events(detect_anomalies(series))
    flagged = events[events["anomaly"]]
    assert len(flagged) == 4  # one per week of history
    assert set(flagged["start"]) == set(series.loc[bursts[-4:], "ds"])


def _office_hours(weeks: int = 5, seed: int = 3) -> pd.DataFrame:
    """Hourly demand: busy weekday office hours, quiet nights and quiet weekends."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=weeks * 7 * 24, freq="h")
    busy = (ds.day_of_week < 5) & (ds.hour >= 8) & (ds.hour < 18)
    y = np.where(busy, 200.0, 40.0) + rng.normal(0, 3, ds.size)
    return pd.DataFrame({"unique_id": "web", "ds": ds, "y": y})


def test_quiet_weekends_of_hourly_data_are_expected_not_flagged() -> None:
    # an hour-of-day profile expects office hours on Saturdays too: every weekend an "incident"
    out = detect_anomalies(_office_hours())
    assert not out["anomaly"].any()


def test_an_office_hours_outage_of_hourly_data_is_still_flagged() -> None:
    series = _office_hours()
    outage = series.index[
        (series["ds"] >= "2024-01-24 10:00") & (series["ds"] < "2024-01-24 14:00")
    ]
    series.loc[outage, "y"] = 0.0
    events = anomaly_events(detect_anomalies(series))
    flagged = events[events["anomaly"]]
    assert flagged["start"].tolist() == [series.loc[outage[0], "ds"]]


def test_one_alert_per_incident_runs_within_the_cooldown_raise_no_new_alert(make_series) -> None:
    series = make_series(n=24 * 14, freq="h", weekly=0, daily=20, noise=1, seed=1)
    series.loc[200:201, "y"] += 80
    series.loc[204, "y"] += 80  # within the cool-down (a quarter of a day): the same incident
    out = detect_anomalies(series)
    assert out.index[out["anomaly"]].tolist() == [200, 201]
    # the later run belongs to the incident (its id, its impact) without a second alert
    assert out.loc[204, "anomaly_id"] == out.loc[200, "anomaly_id"]
    events = anomaly_events(out)
    assert len(events) == 1
    assert events["impact"].iloc[0] == pytest.approx(240, rel=0.1)


def test_no_alert_in_the_warm_up_season(make_series) -> None:
    series = make_series(n=24 * 14, freq="h", weekly=0, daily=20, noise=1, seed=1)
    series.loc[5, "y"] += 80  # first day: nothing to have learned the series from yet
    series.loc[150, "y"] += 80
    out = detect_anomalies(series)
    assert out.index[out["anomaly"]].tolist() == [150]
    assert out.loc[5, "score"] > 6  # still scored, only not alerted


@pytest.mark.parametrize(("later", "alerts"), [(80, [200, 201]), (400, [200, 201, 204])])
def test_a_run_within_the_cooldown_alerts_again_only_when_the_incident_escalates(
    make_series, later: float, alerts: list[int]
) -> None:
    # the same burst again is more of the incident; one far beyond it (the incident got much
    # worse) is news: an incident of its own, with its own id and alert
    series = make_series(n=24 * 14, freq="h", weekly=0, daily=20, noise=1, seed=1)
    series.loc[200:201, "y"] += 80
    series.loc[204, "y"] += later
    out = detect_anomalies(series)
    assert out.index[out["anomaly"]].tolist() == alerts
    assert out["anomaly_id"].nunique() == len(alerts) - 1
