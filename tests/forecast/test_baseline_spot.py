"""The spot price model: a base that follows regime shifts, and spikes that persist a while."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import InsufficientHistoryError
from cloudbalance.forecast import forecast
from cloudbalance.forecast.baseline import FittedSpot, RobustLevel, SpotPrice, _survival

DAY = np.int64(86_400 * 10**9)


def _ds(n: int) -> np.ndarray:
    return np.datetime64("2026-01-01", "ns") + np.arange(n) * DAY.astype("timedelta64[ns]")


def _market(n: int, spikes: dict[int, int], seed: int = 3) -> np.ndarray:
    """A calm price of 0.035 with a little noise and spikes (start -> length) of 2.5x."""
    rng = np.random.default_rng(seed)
    y = 0.035 * np.exp(rng.normal(0, 0.03, n))
    for start, length in spikes.items():
        y[start : start + length] *= 2.5
    return y


#: Past spikes of 4 days each: a spike seen for one day has 3 more to go.
PAST = {40: 4, 90: 4, 140: 4, 190: 4}


def test_a_spike_in_progress_is_forecast_to_last_as_past_spikes_did() -> None:
    y = _market(240, {**PAST, 239: 1})
    pred = SpotPrice().fit(_ds(240), y, step_ns=int(DAY)).predict(7, 0.8)
    # Every past spike lasted 4 days: 3 more days of spike, then back to the base.
    assert pred.yhat[:3] == pytest.approx(y[-1], rel=0.1)
    assert pred.yhat[3:] == pytest.approx(0.035, rel=0.1)
    # The robust level forecasts the spike over tomorrow.
    level = RobustLevel(window=14).fit(_ds(240), y, step_ns=int(DAY)).predict(7, 0.8)
    assert level.yhat[0] < 0.04


def test_past_spikes_do_not_move_the_base() -> None:
    y = _market(240, {**PAST, 230: 4})
    pred = SpotPrice().fit(_ds(240), y, step_ns=int(DAY)).predict(7, 0.8)
    assert pred.yhat == pytest.approx(0.035, rel=0.1)
    # the chance of a new spike reaches into the interval, above only
    assert np.all(pred.lower <= pred.yhat)
    assert np.all(pred.yhat <= pred.upper)


def _reverting(n: int, means: np.ndarray, seed: int) -> np.ndarray:
    """A log price mean-reverting (15%/day) to ``means`` with noise: a spot pool's level."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = np.log(means[0])
    for t in range(1, n):
        x[t] = x[t - 1] + 0.15 * (np.log(means[t]) - x[t - 1]) + rng.normal(0, 0.04)
    return np.exp(x)


def test_the_level_skips_a_spike_inside_its_window() -> None:
    # A median over the raw days is the spike's once the spike fills half its window; the
    # spot model takes the median of the last non-spike days.
    y = _market(240, {**PAST, 226: 8})
    pred = SpotPrice(window=14).fit(_ds(240), y, step_ns=int(DAY)).predict(3, 0.8)
    assert pred.yhat == pytest.approx(0.035, rel=0.08)
    raw = RobustLevel(window=14).fit(_ds(240), y, step_ns=int(DAY)).predict(3, 0.8)
    assert raw.yhat[0] > 0.06


def test_a_jump_that_lasts_beyond_any_spike_is_a_new_level() -> None:
    y = _market(240, PAST)
    y[-30:] *= 2.5  # a month at 2.5x is the market, not a spike
    pred = SpotPrice(max_run=14).fit(_ds(240), y, step_ns=int(DAY)).predict(7, 0.8)
    assert pred.yhat == pytest.approx(0.035 * 2.5, rel=0.1)


def test_spike_survival_is_the_empirical_one_then_geometric() -> None:
    runs = np.array([2, 4, 4, 6])
    out = _survival(runs, age=2, horizon=6)
    # P(L >= 2 + j | L >= 2) for j = 0..4, then runs ran out: mean length 4 -> stay 3/4
    assert out[:5] == pytest.approx([1.0, 0.75, 0.75, 0.25, 0.25])
    assert out[5] == pytest.approx(0.0)
    none_yet = _survival(np.array([], dtype=np.int64), age=1, horizon=3)
    assert none_yet == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert _survival(runs, age=0, horizon=3) == pytest.approx([1.0, 0.0, 0.0, 0.0])
    longer = _survival(np.array([2]), age=3, horizon=2)  # longer than any: geometric tail
    assert longer == pytest.approx([1.0, 0.5, 0.25])


def test_intervals_cover_about_their_level_on_a_mean_reverting_market() -> None:
    n = 400
    y = _reverting(n, np.full(n, 0.035), seed=11)
    hits = []
    for origin in range(300, n - 1):
        pred = SpotPrice().fit(_ds(origin), y[:origin], step_ns=int(DAY)).predict(1, 0.8)
        hits.append(pred.lower[0] <= y[origin] <= pred.upper[0])
    assert 0.7 <= np.mean(hits) <= 0.92


def test_too_short_a_history_is_a_typed_error() -> None:
    with pytest.raises(InsufficientHistoryError):
        SpotPrice().fit(_ds(10), np.ones(10), step_ns=int(DAY))


def test_the_pipeline_fits_spot_on_the_raw_history_with_its_spikes() -> None:
    # The pipeline's robust cleaning replaces a spike with the expected value; the spot model
    # must see it, or it would forecast the spike over before it is.
    y = _market(240, {**PAST, 238: 2})
    ds = pd.date_range("2026-01-01", periods=240, freq="D")
    series = pd.DataFrame({"unique_id": "aws:us-east-1:m6i.large:spot", "ds": ds, "y": y})
    result = forecast(series, horizon=5, model="spot", executor="serial", return_accuracy=True)
    assert set(result.forecast["model"]) == {"spot"}
    assert result.forecast["yhat"].iloc[0] > 0.07
    assert result.forecast["yhat"].iloc[-1] == pytest.approx(0.035, rel=0.1)


class _Recorder(SpotPrice):
    """The spot model, remembering every history the pipeline fits it on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def fit(
        self,
        ds: np.ndarray,
        y: np.ndarray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedSpot:
        self.seen.append(np.array(y, copy=True))
        return super().fit(ds, y, step_ns=step_ns, unique_id=unique_id, init=init)


def test_a_raw_history_model_is_fitted_on_the_series_as_observed() -> None:
    # Month-start bumps and a burst would be cleaned or learned as a calendar peak for other
    # models; a spot market's spikes on the same days of the month are chance, not a calendar.
    ds = pd.date_range("2025-01-01", periods=400, freq="D")
    y = _market(400, {**PAST, 300: 3})
    y[ds.day == 1] *= 2.5
    series = pd.DataFrame({"unique_id": "gcp:us-east1:n2-standard-2:spot", "ds": ds, "y": y})
    model = _Recorder()
    forecast(series, horizon=5, model=model, executor="serial")
    assert model.seen
    for seen in model.seen:
        np.testing.assert_array_equal(seen, y[: seen.size])
