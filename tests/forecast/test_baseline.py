"""The robust level model: the forecast the planner reads for noisy prices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import InsufficientHistoryError
from cloudbalance.forecast import forecast
from cloudbalance.forecast.baseline import RobustLevel

DAY = np.int64(86_400 * 10**9)


def _ds(n: int) -> np.ndarray:
    return np.datetime64("2026-01-01", "ns") + np.arange(n) * DAY.astype("timedelta64[ns]")


def test_a_spike_of_a_few_days_does_not_move_the_level() -> None:
    rng = np.random.default_rng(1)
    y = 0.035 * np.exp(rng.normal(0, 0.03, 60))
    y[-3:] = 0.09  # a spot spike: persistence would forecast 0.09 for the whole horizon
    pred = RobustLevel(window=14).fit(_ds(60), y, step_ns=int(DAY)).predict(7, 0.8)
    assert np.allclose(pred.yhat, np.median(y[-14:]))
    assert pred.yhat[0] < 0.04
    # Spikes in the history make the interval reach up, not down.
    assert np.all(pred.lower <= pred.yhat)
    assert np.all(pred.yhat <= pred.upper)
    assert (pred.upper - pred.yhat)[0] > (pred.yhat - pred.lower)[0]


def test_the_level_follows_a_lasting_shift() -> None:
    y = np.r_[np.full(40, 0.03), np.full(10, 0.05)]
    pred = RobustLevel(window=14).fit(_ds(50), y, step_ns=int(DAY)).predict(3, 0.8)
    assert pred.yhat[0] == pytest.approx(0.05)


def test_too_short_a_history_is_a_typed_error() -> None:
    with pytest.raises(InsufficientHistoryError):
        RobustLevel(window=14).fit(_ds(10), np.ones(10), step_ns=int(DAY))


def test_level_is_a_registered_model_the_pipeline_backtests() -> None:
    ds = pd.date_range("2026-01-01", periods=90, freq="D")
    series = pd.DataFrame({"unique_id": "aws:us-east-1:m6i.large:spot", "ds": ds, "y": 0.03})
    result = forecast(series, horizon=5, model="level", executor="serial", return_accuracy=True)
    assert set(result.forecast["model"]) == {"level"}
    assert result.forecast["yhat"].to_numpy() == pytest.approx(0.03)
    assert "level" in str(result.accuracy["reason"].iloc[0])
