"""Spike probabilities from backtest errors, and the per-series cut that maximises expected F1."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast import ForecastResult, SpikeRule, forecast
from cloudbalance.forecast.spikes import CUTS, DEFAULT_PROBABILITY, MIN_CUT, exceedance, f1_cut


def _result(series: pd.DataFrame, **kwargs: Any) -> ForecastResult:
    out = forecast(series, return_accuracy=True, executor="serial", **kwargs)
    assert isinstance(out, ForecastResult)
    return out


def _near_miss_mondays(seed: int = 3, n: int = 196) -> pd.DataFrame:
    """Days at 100, Mondays at 125: a recurring peak just under the +25% line, noise sd 8.

    The point forecast of a Monday stays below the line (25% over a median a little over 100),
    so "yhat above the line" never warns, yet about a third of Mondays cross it.
    """
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=n, freq="D")
    y = 100.0 + 25.0 * (ds.day_of_week == 0) + rng.normal(0, 8, n)
    return pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})


def test_exceedance_is_the_share_of_past_errors_that_would_cross() -> None:
    errors = np.array([-0.1, 0.0, 0.1, 0.2, np.nan])
    p = exceedance(np.array([100.0, 95.0, 130.0]), errors, 10.0, 101.0)
    # needs an error above 0.1, 0.6, -2.9 (in units of 10): 1, 0 and 4 of the 4 finite errors
    np.testing.assert_allclose(p, [0.25, 0.0, 1.0])
    assert not exceedance(np.array([1.0]), errors, 1.0, float("inf")).any()
    assert not exceedance(np.array([1.0]), np.array([np.nan]), 1.0, 0.0).any()


def test_f1_cut_warns_likely_periods_of_a_noisy_series_below_one_half() -> None:
    # a third of the periods have 45% chance, a third 30%, the rest none: warning both groups
    # expects the best F1, and a fixed 0.5 would warn none of them
    scores = np.array([0.45] * 6 + [0.3] * 6 + [0.0] * 6)
    cut = f1_cut(scores)
    assert MIN_CUT <= cut <= 0.3


def test_f1_cut_keeps_sure_periods_only_when_the_rest_is_unlikely() -> None:
    scores = np.array([0.9] * 3 + [0.27] * 12)
    # 12 periods at 27% would dilute the three sure ones: the expected F1 says leave them out
    assert f1_cut(scores) > 0.27
    assert f1_cut(np.zeros(5)) == DEFAULT_PROBABILITY
    assert f1_cut(np.array([np.nan])) == DEFAULT_PROBABILITY
    assert min(CUTS) == MIN_CUT


def test_recurring_near_miss_peak_is_warned_though_its_forecast_is_below_the_line() -> None:
    series = _near_miss_mondays()
    res = _result(series, horizon=14, windows=3)
    fc = res.forecast
    line = 1.25 * float(np.median(series["y"].to_numpy()[-28:]))
    mondays = fc["ds"].dt.day_of_week == 0
    assert (fc.loc[mondays, "yhat"] < line).all(), "the point forecast alone would not warn"
    assert fc.loc[mondays, "spike"].all()
    assert not fc.loc[~mondays, "spike"].any()
    assert (fc.loc[mondays, "spike_score"] < 0.5).all()
    # the rule's own probability is a fixed cut: at 0.5 these Mondays are not warned
    strict = _result(series, horizon=14, windows=3, spikes=SpikeRule(probability=0.5))
    assert not strict.forecast["spike"].any()
    np.testing.assert_allclose(strict.forecast["spike_score"], fc["spike_score"])


def test_warm_start_keeps_the_spike_scores_and_cut() -> None:
    series = _near_miss_mondays(seed=5)
    cold = _result(series, horizon=14, windows=3)
    warm = _result(series, horizon=14, windows=3, warm_start=cold)
    assert warm.state["s"]["spike_cut"] == cold.state["s"]["spike_cut"]
    np.testing.assert_array_equal(warm.forecast["spike"], cold.forecast["spike"])
    if warm.accuracy["model"].iloc[0] == cold.accuracy["model"].iloc[0]:
        np.testing.assert_allclose(
            warm.forecast["spike_score"], cold.forecast["spike_score"], atol=0.1
        )


def test_without_backtests_the_interval_and_the_default_cut_decide() -> None:
    res = _result(_near_miss_mondays(n=60), horizon=7, windows=0)
    fc = res.forecast
    np.testing.assert_array_equal(fc["spike"], fc["spike_score"] >= DEFAULT_PROBABILITY)


def test_spike_probability_outside_zero_one_is_a_forecast_error() -> None:
    with pytest.raises(ForecastError, match="probability"):
        SpikeRule(probability=1.5)
