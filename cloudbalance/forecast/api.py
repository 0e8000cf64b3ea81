"""The public entry points: ``forecast``, ``backtest`` and ``detect_anomalies`` over frames."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast.anomalies import DEFAULT_THRESHOLD, anomaly_scores
from cloudbalance.forecast.base import Forecaster
from cloudbalance.forecast.core import SeriesOutput, Spec, run_series
from cloudbalance.forecast.executors import Executor, run_chunks
from cloudbalance.forecast.prepare import Aggregate, Prepared, prepare_series
from cloudbalance.forecast.spikes import (
    SpikeRule,
    SpikeWarning,
    spike_scores,
    spike_warnings,
    warnings_frame,
)
from cloudbalance.schema import ACCURACY, FORECAST, validate_forecast

__all__ = ["ForecastResult", "backtest", "detect_anomalies", "forecast"]

Errors = Literal["raise", "skip"]


@dataclass(frozen=True)
class ForecastResult:
    """Forecast, accuracy and spike warnings from one call (each model fitted once).

    Attributes:
        forecast: The forecast frame (``cloudbalance.schema.FORECAST``).
        accuracy: One row per series (``cloudbalance.schema.ACCURACY``); ``confidence`` is what
            the planner reads.
        spikes: Spike warnings, one per run of consecutive spike periods.
        candidates: Backtest metrics of every candidate model, one row per (series, model).
        notes: Per series, what was done to the input (duplicates combined, gaps...).
        skipped: Per series left out with ``errors="skip"``, the reason.
        state: Per series, what tomorrow's run can warm-start from (pass the whole result as
            ``warm_start=``).
    """

    forecast: pd.DataFrame
    accuracy: pd.DataFrame
    spikes: list[SpikeWarning] = field(default_factory=list)
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    state: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def spikes_frame(self) -> pd.DataFrame:
        """The spike warnings as a frame (``unique_id, start, end, peak_ds, expected, ...``)."""
        return warnings_frame(self.spikes)


def _prepare(
    series: pd.DataFrame | list[Prepared],
    *,
    freq: str | None,
    aggregate: Aggregate,
    file: str | None = None,
) -> list[Prepared]:
    if isinstance(series, list):
        return series
    return list(prepare_series(series, aggregate=aggregate, freq=freq, file=file))


def forecast(
    series: pd.DataFrame,
    *,
    horizon: int,
    interval: float = 0.8,
    model: str | Forecaster = "auto",
    windows: int = 3,
    calibrate: bool = True,
    spikes: SpikeRule | None = None,
    holidays_country: str | None = None,
    freq: str | None = None,
    aggregate: Aggregate = "sum",
    errors: Errors = "raise",
    executor: Executor = "process",
    n_jobs: int | None = None,
    address: str | None = None,
    client: Any = None,
    warm_start: ForecastResult | Mapping[str, dict[str, Any]] | None = None,
    rebacktest: bool = False,
    prophet_backend: Literal["numpy", "stan"] = "numpy",
    seed: int = 0,
    return_accuracy: bool = False,
) -> pd.DataFrame | ForecastResult:
    """Forecast every series of a ``unique_id, ds, y`` frame ``horizon`` steps ahead.

    Each series is put on its inferred regular grid (minutes to a week; duplicates aggregated,
    gaps kept as gaps), backtested on ``windows`` rolling origins, its model chosen
    (``model="auto"``: the candidate with the lowest backtest MASE, never worse than seasonal
    naive), its interval calibrated on the backtest errors, and forecast.

    Args:
        series: The series frame; ``ds`` naive UTC (tz-aware is converted).
        horizon: Steps ahead, in the series' own frequency.
        interval: Nominal coverage of ``[yhat_lower, yhat_upper]``.
        model: ``auto`` (default), ``prophet``, ``prophet_flexible``, ``theta``,
            ``seasonal_naive``, ``ensemble``, or any :class:`Forecaster`.
        windows: Backtest windows per series (0: no backtests, no calibration, confidence 0).
        calibrate: Scale intervals by the conformal factor from the backtests.
        spikes: The spike rule (default: 25% above the recent median, probability 0.5).
        holidays_country: ISO code (``US``, ``DE``) whose public holidays Prophet models.
        freq: Force a frequency (``D``, ``h``, ``15min``) instead of inferring it per series.
        aggregate: How duplicated timestamps combine: ``sum`` (costs), ``mean``, ``max``, ``last``.
        errors: ``raise`` the first series error, or ``skip`` the series and record why.
        executor: ``process`` (local pool, default), ``serial`` or ``dask``.
        n_jobs: Worker processes (default: the usable cores).
        address: A Dask scheduler address (implies ``executor="dask"``).
        client: A ``distributed.Client`` (implies ``executor="dask"``).
        warm_start: Yesterday's :class:`ForecastResult` (or its ``state``): Prophet starts from
            yesterday's parameters and the model choice and calibration are reused (unless
            ``rebacktest``), so only one fit per series is needed.
        rebacktest: With ``warm_start``, still re-run backtests and model choice.
        prophet_backend: ``numpy`` (in-process, fast) or ``stan`` (the prophet library).
        seed: Seed of the interval simulation.
        return_accuracy: Return a :class:`ForecastResult` instead of only the forecast frame.

    Returns:
        The forecast frame, or a :class:`ForecastResult` with ``return_accuracy=True``.

    Raises:
        SchemaError: The frame lacks columns or has unparseable values.
        InsufficientHistoryError: A series is too short (with ``errors="raise"``).
        ForecastError: Bad arguments, or a model failed on a series.
    """
    if not 0 < interval < 1:
        raise ForecastError(f"interval must be in (0, 1), got {interval}")
    if horizon < 1:
        raise ForecastError(f"horizon must be at least 1, got {horizon}")
    if errors not in ("raise", "skip"):
        raise ForecastError(f"errors must be 'raise' or 'skip', got {errors!r}")
    rule = spikes or SpikeRule()
    prepared = _prepare(series, freq=freq, aggregate=aggregate)
    warm: dict[str, dict[str, Any]] | None = None
    if isinstance(warm_start, ForecastResult):
        warm = dict(warm_start.state)
    elif warm_start is not None:
        warm = dict(warm_start)
    spec = Spec(
        horizon=horizon,
        level=interval,
        model=model,
        windows=windows,
        calibrate=calibrate,
        holidays_country=holidays_country,
        prophet_backend=prophet_backend,
        seed=seed,
        warm=None,
        rebacktest=rebacktest,
    )
    jobs = [(p, _warm_for(warm, p.unique_id)) for p in prepared]
    outputs = run_chunks(
        partial(_run_one, spec),
        jobs,
        executor=executor,
        n_jobs=n_jobs,
        address=address,
        client=client,
    )
    return _assemble(outputs, spec, rule, errors, return_accuracy)


def _warm_for(warm: dict[str, dict[str, Any]] | None, uid: str) -> dict[str, Any] | None:
    return None if warm is None else warm.get(uid)


def _run_one(spec: Spec, job: tuple[Prepared, dict[str, Any] | None]) -> SeriesOutput:
    prep, warm = job
    if warm is not None:
        spec = Spec(**{**spec.__dict__, "warm": {prep.unique_id: warm}})
    return run_series(prep, spec)


def _assemble(
    outputs: list[SeriesOutput],
    spec: Spec,
    rule: SpikeRule,
    errors: Errors,
    return_accuracy: bool,
) -> pd.DataFrame | ForecastResult:
    skipped: dict[str, str] = {}
    frames: list[pd.DataFrame] = []
    acc_rows: list[dict[str, Any]] = []
    cand_rows: list[dict[str, Any]] = []
    levels: dict[str, float] = {}
    for out in outputs:
        if out.error is not None:
            if errors == "raise":
                raise out.error
            skipped[out.unique_id] = str(out.error)
            continue
        if out.ds is None or out.yhat is None or out.lower is None or out.upper is None:
            raise ForecastError("the model returned no forecast", unique_id=out.unique_id)
        levels[out.unique_id] = out.history_level
        threshold = rule.threshold(out.unique_id, out.history_level)
        score = spike_scores(out.yhat, out.lower, out.upper, threshold, spec.level)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": out.unique_id,
                    "ds": out.ds.astype("datetime64[us]"),
                    "yhat": out.yhat,
                    "yhat_lower": out.lower,
                    "yhat_upper": out.upper,
                    "model": out.model,
                    "interval": spec.level,
                    "spike": score >= rule.probability,
                    "spike_score": score,
                }
            )
        )
        acc_rows.append(out.accuracy)
        for name, metrics in out.candidates.items():
            cand_rows.append({"unique_id": out.unique_id, "model": name, **metrics})
    if frames:
        fc = pd.concat(frames, ignore_index=True)
    else:
        fc = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in FORECAST.names})
    fc = validate_forecast(fc)
    if not return_accuracy:
        return fc
    accuracy = ACCURACY.validate(
        pd.DataFrame(acc_rows, columns=ACCURACY.names)
        if acc_rows
        else pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in ACCURACY.names})
    )
    return ForecastResult(
        forecast=fc,
        accuracy=accuracy,
        spikes=spike_warnings(fc, levels, rule),
        candidates=pd.DataFrame(cand_rows),
        notes={o.unique_id: o.notes for o in outputs if o.notes},
        skipped=skipped,
        state={o.unique_id: o.state for o in outputs if o.error is None and o.state},
    )


def _dtype(column: str) -> str:
    if column == "ds":
        return "datetime64[us]"
    if column in ("unique_id", "model", "reason"):
        return "object"
    if column == "spike":
        return "boolean"
    return "float64"


def backtest(
    series: pd.DataFrame,
    *,
    horizon: int,
    interval: float = 0.8,
    model: str | Forecaster = "auto",
    windows: int = 3,
    per_model: bool = False,
    **kwargs: Any,
) -> pd.DataFrame:
    """Rolling-origin backtests: the accuracy frame (MASE, sMAPE, coverage, confidence).

    With ``per_model=True`` the frame has one row per (series, candidate model) instead, with
    ``mase, smape, coverage, coverage_calibrated, factor``: the evidence behind the choice.
    Other keyword arguments are those of :func:`forecast`.
    """
    result = forecast(
        series,
        horizon=horizon,
        interval=interval,
        model=model,
        windows=windows,
        return_accuracy=True,
        **kwargs,
    )
    assert isinstance(result, ForecastResult)
    return result.candidates if per_model else result.accuracy


def detect_anomalies(
    series: pd.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    freq: str | None = None,
    aggregate: Aggregate = "sum",
) -> pd.DataFrame:
    """Flag anomalous historical points: ``unique_id, ds, y, anomaly, score, expected``.

    ``score`` is the robust z-score of the point's residual from its seasonal level;
    ``anomaly`` is ``|score| > threshold`` (see :mod:`cloudbalance.forecast.anomalies`). Gaps
    are not rows; duplicated timestamps are aggregated first.
    """
    if threshold <= 0 or not math.isfinite(threshold):
        raise ForecastError(f"threshold must be a positive number, got {threshold}")
    frames = []
    for prep in _prepare(series, freq=freq, aggregate=aggregate):
        if prep.observed < 3:
            expected = np.full(prep.y.size, np.nan)
            score = np.zeros(prep.y.size)
        else:
            expected, score = anomaly_scores(prep)
        ok = np.isfinite(prep.y)
        score = np.where(np.isfinite(score), score, 0.0)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": prep.unique_id,
                    "ds": prep.ds[ok].astype("datetime64[us]"),
                    "y": prep.y[ok],
                    "anomaly": np.abs(score[ok]) > threshold,
                    "score": score[ok],
                    "expected": expected[ok],
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["unique_id", "ds", "y", "anomaly", "score", "expected"])
    return pd.concat(frames, ignore_index=True)
