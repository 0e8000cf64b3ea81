"""Forecasts that hold on messy series: gaps, non-negative values, outliers, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.cli import main
from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast import ForecastResult, forecast
from cloudbalance.forecast.anomalies import fit_history
from cloudbalance.forecast.calibrate import conformal_factor, drift_factor
from cloudbalance.forecast.core import ensemble_weights
from cloudbalance.forecast.prepare import prepare_series


def test_empty_values_are_missing_points_reported_not_errors(tmp_path, capsys) -> None:
    src, out = tmp_path / "s.csv", tmp_path / "fc.csv"
    ds = pd.date_range("2025-01-01", periods=60, freq="D").strftime("%Y-%m-%d")
    y = [f"{100 + 5 * np.sin(i):.2f}" for i in range(60)]
    y[10] = y[11] = ""
    pd.DataFrame({"unique_id": "web", "ds": ds, "y": y}).to_csv(src, index=False)
    code = main(["forecast", "-i", str(src), "-n", "7", "-o", str(out), "--windows", "1"])
    assert code == 0
    assert len(pd.read_csv(out)) == 7
    assert "2 empty y value(s) are treated as missing points" in capsys.readouterr().err
    assert main(["anomalies", "-i", str(src), "-o", str(tmp_path / "a.csv")]) == 0


def test_a_series_with_nothing_left_is_an_error_only_then() -> None:
    frame = pd.DataFrame({"unique_id": "a", "ds": ["2025-01-01", "2025-01-02"], "y": ["", "NULL"]})
    with pytest.raises(ForecastError, match="every y value is empty"):
        list(prepare_series(frame))
    frame["y"] = ["", "3"]
    (prep,) = prepare_series(frame)
    assert prep.observed == 1


def test_non_negative_series_get_non_negative_intervals(make_series) -> None:
    # a small cost with big relative noise and a falling trend: symmetric intervals go below 0
    series = make_series(n=120, level=6, slope=-0.04, weekly=1, noise=2.5, seed=9)
    series["y"] = series["y"].clip(lower=0)
    res = forecast(series, horizon=30, executor="serial", windows=2, return_accuracy=True)
    assert isinstance(res, ForecastResult)
    fc = res.forecast
    assert (fc[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all()


def test_series_that_can_be_negative_keep_negative_intervals(make_series) -> None:
    series = make_series(n=120, level=0, slope=-0.05, weekly=1, noise=2, seed=9)
    fc = forecast(series, horizon=14, executor="serial", windows=2)
    assert isinstance(fc, pd.DataFrame)
    assert (fc["yhat_lower"] < 0).any()


def test_outliers_are_replaced_for_fitting_not_kept(make_series) -> None:
    series = make_series(n=24 * 30, freq="h", weekly=0, daily=20, noise=1, seed=3)
    series["y"] = series["y"].clip(lower=0)
    series.loc[len(series) - 30 : len(series) - 28, "y"] += 400  # a burst yesterday
    (prep,) = prepare_series(series)
    clean = fit_history(prep).y
    assert np.nanmax(clean) < 200
    assert np.allclose(clean[:600], prep.y[:600])  # quiet history untouched
    # seasonal naive on the raw history would repeat the burst; the forecast does not
    fc = forecast(series, horizon=24, executor="serial", windows=2)
    assert isinstance(fc, pd.DataFrame)
    assert fc["yhat"].max() < 200


def test_ensemble_weights_follow_backtest_skill() -> None:
    w = ensemble_weights({"a": 0.5, "b": 1.0, "c": float("nan")})
    assert w["a"] == pytest.approx(0.8)
    assert w["b"] == pytest.approx(0.2)
    assert "c" not in w
    assert ensemble_weights({"a": float("nan"), "b": float("nan")}) == {"a": 0.5, "b": 0.5}


def test_drift_widens_the_factor_only_when_windows_disagree() -> None:
    rng = np.random.default_rng(0)
    same = np.abs(rng.normal(0, 1, 90))
    window = np.repeat(np.arange(3), 30)
    assert drift_factor(same, window, 0.8) == pytest.approx(conformal_factor(same, 0.8), rel=0.3)
    drifting = same * np.repeat([1.0, 1.0, 3.0], 30)  # the latest window is wilder
    assert drift_factor(drifting, window, 0.8) > 1.5 * conformal_factor(drifting, 0.8)


def test_recurring_month_end_peaks_are_forecast() -> None:
    rng = np.random.default_rng(1)
    ds = pd.date_range("2025-01-01", "2025-09-20", freq="D")
    y = 100 + 10 * np.sin(2 * np.pi * np.arange(ds.size) / 7) + rng.normal(0, 3, ds.size)
    batch = ds.is_month_end | (ds + pd.Timedelta(days=1)).is_month_end
    series = pd.DataFrame({"unique_id": "etl", "ds": ds, "y": np.where(batch, 3.2 * y, y)})
    fc = forecast(series, horizon=14, executor="serial", windows=2)
    assert isinstance(fc, pd.DataFrame)
    at_end = fc["ds"].dt.is_month_end | (fc["ds"] + pd.Timedelta(days=1)).dt.is_month_end
    assert (fc.loc[at_end, "yhat"] > 250).all()
    assert (fc.loc[~at_end, "yhat"] < 150).all()


def test_recurring_quarterly_credits_are_forecast() -> None:
    rng = np.random.default_rng(2)
    ds = pd.date_range("2024-09-01", "2026-08-20", freq="D")
    y = 100 + 10 * np.sin(2 * np.pi * np.arange(ds.size) / 7) + rng.normal(0, 3, ds.size)
    credit = (ds.day == 15) & (ds.month % 3 == 0)
    series = pd.DataFrame({"unique_id": "aws", "ds": ds, "y": np.where(credit, y - 150, y)})
    fc = forecast(series, horizon=30, executor="serial", windows=2)
    assert isinstance(fc, pd.DataFrame)
    on_credit = (fc["ds"].dt.day == 15) & (fc["ds"].dt.month % 3 == 0)
    assert on_credit.sum() == 1
    assert (fc.loc[on_credit, "yhat"] < 0).all()
    assert (fc.loc[~on_credit, "yhat"] > 70).all()
