"""Per-series calibrated bars and sustained-shift incidents of the anomaly detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.forecast import anomaly_events, detect_anomalies
from cloudbalance.forecast.anomalies import (
    DEFAULT_LOW,
    DEFAULT_THRESHOLD,
    _incidents,
    calibrated_threshold,
    detect,
)
from cloudbalance.forecast.prepare import prepare_series

WEEKS = 3
POINTS = 288 * 7 * WEEKS  # three weeks of 5-minute data


def _five_minute(seed: int = 0, noise: str = "normal") -> pd.DataFrame:
    """Three weeks of 5-minute demand: a daily cycle around 100 plus noise of scale 5."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-03-01", periods=POINTS, freq="5min")
    hour = ds.hour.to_numpy() + ds.minute.to_numpy() / 60
    base = 100 + 30 * np.sin(2 * np.pi * hour / 24)
    draw = rng.normal(0, 1, POINTS) if noise == "normal" else rng.standard_t(3, POINTS)
    y = np.maximum(base + 5 * draw, 0.0)
    return pd.DataFrame({"unique_id": "api", "ds": ds, "y": y})


def _detection(series: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    prep = next(iter(prepare_series(series)))
    found = detect(prep)
    return found.score, [inc.kind for inc in found.incidents]


def _flagged(series: pd.DataFrame) -> pd.DataFrame:
    events = anomaly_events(detect_anomalies(series))
    return events[events["anomaly"]]


@pytest.fixture(scope="module")
def quiet() -> pd.DataFrame:
    return _five_minute()


def test_quiet_noise_raises_no_shift_and_at_most_one_alert(quiet: pd.DataFrame) -> None:
    _, kinds = _detection(quiet)
    assert "shift" not in kinds
    assert len(_flagged(quiet)) <= 1


def test_a_quiet_series_gets_a_lower_bar_and_heavy_tails_keep_the_threshold() -> None:
    rng = np.random.default_rng(1)
    observed = np.ones(POINTS, dtype=bool)
    gaussian = rng.normal(0, 1, POINTS)
    bar = calibrated_threshold(
        gaussian, observed, season=288, threshold=DEFAULT_THRESHOLD, low=DEFAULT_LOW
    )
    assert DEFAULT_LOW <= bar < 5.5
    heavy = rng.standard_t(2, POINTS)
    assert calibrated_threshold(
        heavy, observed, season=288, threshold=DEFAULT_THRESHOLD, low=DEFAULT_LOW
    ) == pytest.approx(DEFAULT_THRESHOLD)
    # gaps are not noise: a series that is mostly gaps has too little to fit and keeps the bar
    sparse = observed.copy()
    sparse[50:] = False
    assert calibrated_threshold(
        gaussian, sparse, season=288, threshold=DEFAULT_THRESHOLD, low=DEFAULT_LOW
    ) == pytest.approx(DEFAULT_THRESHOLD)


def test_a_five_sigma_spike_on_a_quiet_series_is_flagged(quiet: pd.DataFrame) -> None:
    series = quiet.copy()
    at = 288 * 12 + 50
    series.loc[at, "y"] += 5.5 * 5
    score, _ = _detection(series)
    assert DEFAULT_LOW < score[at] < DEFAULT_THRESHOLD  # a fixed bar of 6 would not see it
    assert series.loc[at, "ds"] in set(_flagged(series)["start"])


def test_a_sustained_shift_without_one_outlying_point_is_one_alert(quiet: pd.DataFrame) -> None:
    series = quiet.copy()
    span = slice(288 * 12, 288 * 12 + 96)  # eight hours, 2.2 noise scales up
    series.loc[series.index[span], "y"] += 2.2 * 5
    score, kinds = _detection(series)
    # no point is even beyond low: the alert is the shift's trigger point
    assert np.abs(score[span]).max() < DEFAULT_LOW
    assert kinds.count("shift") == 1
    flagged = _flagged(series)
    start, end = series["ds"].iloc[span.start], series["ds"].iloc[span.stop - 1]
    inside = flagged[(flagged["start"] >= start) & (flagged["start"] <= end)]
    assert len(inside) == 1
    assert inside["impact"].iloc[0] > 0


def test_a_partial_drop_for_half_a_day_is_caught(quiet: pd.DataFrame) -> None:
    # a region loses a fifth of its traffic for twelve hours: no point is extreme on its own
    series = quiet.copy()
    span = slice(288 * 12, 288 * 12 + 144)
    series.loc[series.index[span], "y"] *= 0.8
    flagged = _flagged(series)
    start, end = series["ds"].iloc[span.start], series["ds"].iloc[span.stop - 1]
    onset = start - pd.Timedelta(hours=1)  # the shift's centred window sees it coming
    inside = flagged[(flagged["start"] >= onset) & (flagged["start"] <= end)]
    assert len(inside) == 1
    assert inside["impact"].iloc[0] < 0


def test_a_drop_to_zero_is_caught(quiet: pd.DataFrame) -> None:
    series = quiet.copy()
    span = slice(288 * 12, 288 * 12 + 72)
    series.loc[series.index[span], "y"] = 0.0
    flagged = _flagged(series)
    assert series["ds"].iloc[span.start] in set(flagged["start"])


def test_heavy_tailed_noise_raises_no_shift_and_stays_within_its_budget() -> None:
    series = _five_minute(seed=2, noise="t")
    _, kinds = _detection(series)
    assert "shift" not in kinds
    # its weekly budget, plus what passes the escalating bar (2x, then 4x the bar): Student-t
    # noise clipped at zero has drops to near zero at several times the bar
    assert len(_flagged(series)) <= WEEKS + 2


def test_spikes_and_shifts_have_separate_budgets() -> None:
    # a week of data, budget one incident of each kind: three large spikes (each below twice the
    # bar, so none passes the escalating bar), one smaller shift
    n = 2016
    score = np.zeros(n)
    shift = np.zeros(n)
    expected = np.full(n, 10.0)
    y = expected.copy()
    for at in (300, 800, 1300):
        score[at], y[at] = 10.0, 200.0
    shift[1600:1650] = 6.0
    y[1600:1650] = 12.0  # impact 100: below every spike's
    kept = _incidents(score, y, expected, threshold=6, low=4, cooldown=0, weeks=1.0, shift=shift)
    assert [(inc.kind, inc.start) for inc in kept] == [("spike", 300), ("shift", 1600)]
    assert kept[1].end == 1649
    assert kept[1].trigger == 1600
