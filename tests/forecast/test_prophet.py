from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError, InsufficientHistoryError
from cloudbalance.forecast import ProphetForecaster
from cloudbalance.forecast.prophet import silence_prophet

DAY = 86_400 * 10**9


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["ds"].to_numpy(dtype="datetime64[ns]"), frame["y"].to_numpy(dtype=float)


def test_point_forecast_matches_the_prophet_library_within_one_percent(make_series) -> None:
    frame = make_series(n=400, slope=0.2, weekly=8, noise=2, seed=3)
    frame.loc[250:, "y"] += 15  # a level shift for the changepoints to find
    ds, y = _arrays(frame)
    ours = ProphetForecaster().fit(ds, y, step_ns=DAY).predict(30, 0.8)

    silence_prophet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from prophet import Prophet

        model = Prophet(uncertainty_samples=0)
        model.fit(frame[["ds", "y"]])
        theirs = model.predict(model.make_future_dataframe(30)).tail(30)["yhat"].to_numpy()
    rel = np.abs(ours.yhat - theirs).sum() / np.abs(theirs).sum()
    assert rel < 0.01


def test_trend_and_weekly_season_are_forecast_within_three_percent(make_series) -> None:
    full = make_series(n=330, slope=0.3, weekly=12, noise=1.5, seed=1)
    train, test = full.iloc[:300], full.iloc[300:]
    ds, y = _arrays(train)
    pred = ProphetForecaster().fit(ds, y, step_ns=DAY).predict(30, 0.8)
    mape = np.mean(np.abs(pred.yhat - test["y"].to_numpy()) / test["y"].to_numpy())
    assert mape < 0.03
    assert np.all(pred.lower <= pred.yhat)
    assert np.all(pred.yhat <= pred.upper)
    np.testing.assert_array_equal(pred.ds, test["ds"].to_numpy(dtype="datetime64[ns]"))


def test_warm_start_from_yesterdays_parameters_gives_the_same_forecast(make_series) -> None:
    frame = make_series(n=301, seed=2)
    ds, y = _arrays(frame)
    model = ProphetForecaster()
    yesterday = model.fit(ds[:-1], y[:-1], step_ns=DAY)
    cold = model.fit(ds, y, step_ns=DAY)
    warm = model.fit(ds, y, step_ns=DAY, init=yesterday.params)
    np.testing.assert_allclose(warm.predict(14, 0.8).yhat, cold.predict(14, 0.8).yhat, rtol=1e-3)


def test_hourly_data_gets_a_daily_seasonality(make_series) -> None:
    frame = make_series(n=24 * 20, freq="h", weekly=0, daily=10, slope=0, noise=0.5)
    ds, y = _arrays(frame)
    fitted = ProphetForecaster().fit(ds, y, step_ns=3600 * 10**9)
    assert [name for name, _, _ in fitted.design.seasonalities] == ["weekly", "daily"]
    pred = fitted.predict(24, 0.8)
    truth = 100 + 10 * np.sin(2 * np.pi * np.arange(480, 504) / 24)
    assert np.max(np.abs(pred.yhat - truth)) < 2.0


def test_holidays_of_a_country_become_features(make_series) -> None:
    frame = make_series(n=400, weekly=0, slope=0, noise=0.5)
    holiday = frame["ds"].isin(pd.to_datetime(["2024-07-04", "2024-12-25"]))
    frame.loc[holiday, "y"] -= 40
    ds, y = _arrays(frame)
    fitted = ProphetForecaster(holidays_country="US").fit(ds, y, step_ns=DAY)
    assert "Christmas Day" in fitted.design.holiday_names
    fitted_values = fitted.in_sample(ds)
    assert np.abs(fitted_values[holiday.to_numpy()] - y[holiday.to_numpy()]).max() < 15


def test_unknown_holiday_country_is_a_forecast_error(make_series) -> None:
    ds, y = _arrays(make_series(n=60))
    with pytest.raises(ForecastError, match="holiday country"):
        ProphetForecaster(holidays_country="XX").fit(ds, y, step_ns=DAY)


def test_fewer_than_ten_points_raise_insufficient_history() -> None:
    ds = pd.date_range("2024-01-01", periods=9, freq="D").to_numpy(dtype="datetime64[ns]")
    with pytest.raises(InsufficientHistoryError) as info:
        ProphetForecaster().fit(ds, np.arange(9.0), step_ns=DAY, unique_id="web")
    assert info.value.minimum == 10
    assert "web" in str(info.value)


def test_constant_zero_and_negative_series_fit_without_error() -> None:
    ds = pd.date_range("2024-01-01", periods=60, freq="D").to_numpy(dtype="datetime64[ns]")
    for y in (np.zeros(60), np.full(60, 5.0), -np.abs(np.sin(np.arange(60.0))) * 10):
        pred = ProphetForecaster().fit(ds, y, step_ns=DAY).predict(7, 0.8)
        assert np.all(np.isfinite(pred.yhat))
    flat = ProphetForecaster().fit(ds, np.full(60, 5.0), step_ns=DAY).predict(7, 0.8)
    np.testing.assert_allclose(flat.yhat, 5.0, atol=0.05)


def test_multiplicative_seasonality_scales_with_the_trend(make_series) -> None:
    n = 200
    t = np.arange(n)
    ds = pd.date_range("2024-01-01", periods=n, freq="D")
    y = (50 + t) * (1 + 0.2 * np.sin(2 * np.pi * t / 7))
    model = ProphetForecaster(seasonality_mode="multiplicative")
    pred = model.fit(ds.to_numpy(dtype="datetime64[ns]"), y, step_ns=DAY).predict(7, 0.8)
    truth = (50 + np.arange(n, n + 7)) * (1 + 0.2 * np.sin(2 * np.pi * np.arange(n, n + 7) / 7))
    assert np.mean(np.abs(pred.yhat - truth) / truth) < 0.03


def test_importing_prophet_logs_nothing_after_silencing(caplog) -> None:
    silence_prophet()
    assert logging.getLogger("cmdstanpy").level >= logging.ERROR
    assert not logging.getLogger("prophet").propagate


def test_stan_backend_agrees_with_the_numpy_backend_and_accepts_a_warm_init(
    make_series,
) -> None:
    frame = make_series(n=200, slope=0.2, weekly=6, noise=1.5, seed=8)
    ds, y = _arrays(frame)
    fast = ProphetForecaster().fit(ds, y, step_ns=DAY)
    stan = ProphetForecaster(backend="stan").fit(ds, y, step_ns=DAY, init=fast.params)
    a, b = fast.predict(14, 0.8).yhat, stan.predict(14, 0.8).yhat
    assert np.abs(a - b).sum() / np.abs(b).sum() < 0.01
    with pytest.raises(ForecastError, match="numpy backend"):
        ProphetForecaster(backend="stan", holidays_country="US").fit(ds, y, step_ns=DAY)
