from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError, InsufficientHistoryError, SchemaError
from cloudbalance.forecast import (
    ForecastResult,
    Prediction,
    SpikeRule,
    backtest,
    confidence_score,
    forecast,
)
from cloudbalance.forecast.base import future_ds
from cloudbalance.schema import ACCURACY, FORECAST, validate_forecast


def _result(series: pd.DataFrame, **kwargs: Any) -> ForecastResult:
    out = forecast(series, return_accuracy=True, **kwargs)
    assert isinstance(out, ForecastResult)
    return out


def test_forecast_frame_has_the_schema_and_one_row_per_period(make_series, fast) -> None:
    series = pd.concat([make_series("a", seed=1), make_series("b", seed=2)])
    fc = forecast(series, horizon=14, **fast)
    assert isinstance(fc, pd.DataFrame)
    assert list(fc.columns) == FORECAST.names
    validate_forecast(fc)
    assert fc.groupby("unique_id").size().to_dict() == {"a": 14, "b": 14}
    assert (fc["interval"] == 0.8).all()
    first = fc[fc["unique_id"] == "a"]["ds"].iloc[0]
    assert first == series[series["unique_id"] == "a"]["ds"].max() + pd.Timedelta(days=1)


def test_top_level_names_are_the_forecast_functions(make_series) -> None:
    import cloudbalance.forecast.core

    fc = cloudbalance.forecast(make_series(n=60), horizon=3, executor="serial", windows=1)
    assert len(fc) == 3
    assert callable(cloudbalance.backtest)
    assert callable(cloudbalance.detect_anomalies)


def test_default_pipeline_is_never_worse_than_seasonal_naive_on_backtests(
    make_series, fast
) -> None:
    step = make_series("step", n=200, slope=0, weekly=0, noise=1, seed=4)
    step.loc[150:, "y"] += 60  # a regime change: Prophet's slow trend lags behind it
    trend = make_series("trend", n=200, slope=0.5, weekly=15, seed=5)
    series = pd.concat([step, trend])
    res = _result(series, horizon=14, **fast)
    naive = res.candidates[res.candidates["model"] == "seasonal_naive"].set_index("unique_id")
    for row in res.accuracy.itertuples():
        assert row.mase <= naive.loc[row.unique_id, "mase"] + 1e-12
        assert row.model in row.reason
    assert res.accuracy.set_index("unique_id").loc["trend", "model"] != "seasonal_naive"


def test_accuracy_frame_carries_confidence_and_reason(make_series, fast) -> None:
    res = _result(make_series(n=200, seed=7), horizon=14, **fast)
    acc = ACCURACY.validate(res.accuracy)
    row = acc.iloc[0]
    assert 0.0 < row["confidence"] <= 1.0
    assert row["windows"] == 2
    assert "backtest MASE" in row["reason"]
    expected = confidence_score(
        mase=row["mase"],
        smape=row["smape"],
        interval=0.8,
        coverage=row["coverage_calibrated"],
        windows=2,
    )
    assert row["confidence"] == pytest.approx(expected)


def test_backtest_coverage_of_the_calibrated_interval_is_within_a_band(make_series) -> None:
    series = pd.concat([make_series(f"s{i}", n=260, seed=10 + i) for i in range(4)])
    acc = backtest(series, horizon=14, windows=4, executor="serial")
    # 4 series x 4 windows x 14 points: the honest (leave-one-window-out) coverage is near 80%
    assert 0.65 <= acc["coverage_calibrated"].mean() <= 0.95


@dataclass
class _Overconfident:
    """A model whose interval is far too narrow: calibration must widen it."""

    name: str = "overconfident"
    min_history: int = 5

    def fit(self, ds, y, *, step_ns, unique_id=None, init=None) -> Any:
        mean = float(np.nanmean(y[-7:]))
        last = ds[-1]

        class Fitted:
            model = "overconfident"
            params: ClassVar[dict[str, Any]] = {}

            def predict(self, horizon: int, level: float) -> Prediction:
                yhat = np.full(horizon, mean)
                return Prediction(future_ds(last, step_ns, horizon), yhat, yhat - 0.5, yhat + 0.5)

        return Fitted()


def test_too_narrow_intervals_are_widened_and_both_coverages_reported(make_series) -> None:
    series = make_series(n=200, slope=0, weekly=0, noise=5, seed=3)
    res = _result(series, horizon=10, model=_Overconfident(), windows=3, executor="serial")
    row = res.accuracy.iloc[0]
    assert row["coverage"] < 0.2
    assert row["coverage_calibrated"] > 0.5
    width = (res.forecast["yhat_upper"] - res.forecast["yhat_lower"]).mean()
    assert width > 5  # widened from 1.0
    assert "interval scaled by" in row["reason"]


def test_weekly_spike_is_warned_ahead_with_when_how_big_how_sure(make_series, fast) -> None:
    series = make_series(n=182, slope=0, weekly=0, noise=1, seed=2)
    mondays = series["ds"].dt.day_of_week == 0
    series.loc[mondays, "y"] += 80  # the Monday batch job
    res = _result(series, horizon=14, **fast)
    assert res.spikes, "expected spike warnings"
    days = {w.peak_ds.day_of_week for w in res.spikes}
    assert days == {0}
    warning = res.spikes[0]
    assert warning.ratio > 1.5
    assert warning.probability >= 0.5
    assert warning.start <= warning.peak_ds <= warning.end
    flagged = res.forecast[res.forecast["spike"]]
    assert set(flagged["ds"].dt.day_of_week) == {0}
    frame = res.spikes_frame()
    assert {"unique_id", "start", "end", "expected", "ratio", "probability"} <= set(frame.columns)


def test_budget_rule_warns_when_growth_crosses_the_budget(make_series, fast) -> None:
    series = make_series(n=200, slope=0.5, weekly=0, noise=0.5, seed=1)  # ends near 200
    rule = SpikeRule("budget", value={"s": 205.0}, probability=0.6)
    res = _result(series, horizon=30, spikes=rule, **fast)
    assert res.spikes
    assert res.spikes[0].basis == "budget"
    assert res.spikes[0].start > series["ds"].max()
    fc = res.forecast
    assert not fc[fc["yhat"] < 200]["spike"].any()


def test_spike_rule_needs_a_value_for_budget() -> None:
    with pytest.raises(ForecastError, match="needs a value"):
        SpikeRule("budget")


def test_warm_start_reuses_the_choice_and_matches_the_cold_forecast(make_series, fast) -> None:
    full = make_series(n=201, seed=9)
    today = _result(full.iloc[:200], horizon=14, **fast)
    cold = _result(full, horizon=14, **fast)
    warm = _result(full, horizon=14, warm_start=today, **fast)
    assert warm.accuracy["model"].iloc[0] == today.accuracy["model"].iloc[0]
    assert "warm start" in warm.accuracy["reason"].iloc[0]
    again = _result(full, horizon=14, warm_start=warm, **fast)  # day after: state carries on
    assert again.accuracy["reason"].iloc[0].count("warm start") == 1
    assert again.state["s"]["params"]
    if cold.accuracy["model"].iloc[0] == warm.accuracy["model"].iloc[0]:
        np.testing.assert_allclose(warm.forecast["yhat"], cold.forecast["yhat"], rtol=0.02)


def test_each_model_can_be_requested_by_name(make_series, fast) -> None:
    series = make_series(n=120)
    names = ("prophet", "prophet_flexible", "theta", "seasonal_naive", "level", "spot", "ensemble")
    for name in names:
        fc = forecast(series, horizon=7, model=name, **fast)
        assert set(fc["model"]) == {name}


def test_unknown_model_lists_the_valid_names(make_series, fast) -> None:
    with pytest.raises(ForecastError, match="valid: auto, ensemble, level, prophet"):
        forecast(make_series(n=60), horizon=7, model="arima", **fast)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"interval": 1.2}, "interval"), ({"horizon": 0}, "horizon"), ({"errors": "x"}, "errors")],
)
def test_bad_arguments_are_forecast_errors(make_series, kwargs, message) -> None:
    args: dict[str, Any] = {"horizon": 7, **kwargs}
    with pytest.raises(ForecastError, match=message):
        forecast(make_series(n=30), executor="serial", **args)


def test_short_series_raise_or_are_skipped_and_reported(make_series, fast) -> None:
    series = pd.concat([make_series("long", n=80), make_series("tiny", n=2)])
    with pytest.raises(InsufficientHistoryError) as info:
        forecast(series, horizon=7, **fast)
    assert info.value.unique_id == "tiny"
    assert info.value.minimum == 3
    res = _result(series, horizon=7, errors="skip", **fast)
    assert set(res.forecast["unique_id"]) == {"long"}
    assert "tiny" in res.skipped


def test_history_too_short_for_backtests_falls_back_to_naive(make_series, fast) -> None:
    res = _result(make_series(n=6), horizon=3, **fast)
    row = res.accuracy.iloc[0]
    assert row["model"] == "seasonal_naive"
    assert "fallback" in row["reason"]
    assert row["confidence"] == 0.0
    assert row["windows"] == 0
    assert len(res.forecast) == 3


def test_single_observation_is_insufficient_history(fast) -> None:
    one = pd.DataFrame({"unique_id": ["x"], "ds": ["2024-01-01"], "y": [1.0]})
    with pytest.raises(InsufficientHistoryError):
        forecast(one, horizon=3, **fast)


@pytest.mark.parametrize(
    "shape", ["constant", "zeros", "credits", "gaps", "outliers", "zero_days", "step"]
)
def test_cloud_cost_quirks_never_crash(make_series, fast, shape) -> None:
    series = make_series(n=150, seed=3)
    if shape == "constant":
        series["y"] = 42.0
    elif shape == "zeros":
        series["y"] = 0.0
    elif shape == "credits":
        series.loc[series.index % 30 == 0, "y"] = -250.0  # month-end credits
    elif shape == "gaps":
        series = series.drop(index=list(range(40, 55)) + list(range(140, 146)))
    elif shape == "outliers":
        series.loc[[20, 90], "y"] = 1e6
    elif shape == "zero_days":
        series.loc[series["ds"].dt.day_of_week >= 5, "y"] = 0.0
    elif shape == "step":
        series.loc[100:, "y"] *= 3
    res = _result(series, horizon=10, **fast)
    fc = res.forecast
    assert len(fc) == 10
    assert np.isfinite(fc[["yhat", "yhat_lower", "yhat_upper"]].to_numpy()).all()
    assert 0.0 <= res.accuracy["confidence"].iloc[0] <= 1.0
    if shape == "constant":
        np.testing.assert_allclose(fc["yhat"], 42.0, rtol=1e-3)
    if shape == "gaps":
        assert any("gaps" in n for n in res.notes["s"])


def test_hourly_and_fifteen_minute_series_forecast_in_their_own_steps(make_series, fast) -> None:
    hourly = make_series("h", n=24 * 21, freq="h", weekly=0, daily=5)
    quarter = make_series("q", n=96 * 4, freq="15min", weekly=0, daily=5)
    fc = forecast(pd.concat([hourly, quarter]), horizon=4, **fast)
    steps = fc.groupby("unique_id")["ds"].apply(lambda s: s.diff().dropna().unique().tolist())
    assert steps["h"] == [pd.Timedelta(hours=1)]
    assert steps["q"] == [pd.Timedelta(minutes=15)]


def test_missing_column_is_a_schema_error_naming_it(fast) -> None:
    frame = pd.DataFrame({"unique_id": ["a"], "ds": ["2024-01-01"]})
    with pytest.raises(SchemaError, match="'y'"):
        forecast(frame, horizon=3, **fast)


def test_process_pool_gives_the_same_forecast_as_serial(make_series) -> None:
    series = pd.concat([make_series(f"s{i}", n=120, seed=i) for i in range(4)])
    serial = forecast(series, horizon=7, windows=1, executor="serial")
    pooled = forecast(series, horizon=7, windows=1, executor="process", n_jobs=2)
    pd.testing.assert_frame_equal(serial, pooled)


def test_dask_local_cluster_gives_the_same_forecast_as_serial(make_series) -> None:
    distributed = pytest.importorskip("distributed")
    series = pd.concat([make_series(f"s{i}", n=120, seed=i) for i in range(3)])
    serial = forecast(series, horizon=7, windows=1, executor="serial")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = forecast(series, horizon=7, windows=1, client=client)
    pd.testing.assert_frame_equal(serial, on_dask)


def test_confidence_is_zero_without_backtests_and_falls_with_error() -> None:
    assert confidence_score(mase=0.5, smape=0.1, interval=0.8, coverage=0.8, windows=0) == 0
    good = confidence_score(mase=0.5, smape=0.05, interval=0.8, coverage=0.8, windows=3)
    bad = confidence_score(mase=2.0, smape=0.6, interval=0.8, coverage=0.5, windows=3)
    assert 0 <= bad < good <= 1
    assert math.isclose(good, 1 - 0.05 / 2)
