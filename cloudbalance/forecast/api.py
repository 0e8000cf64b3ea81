"""The public entry points: ``forecast``, ``backtest``, ``detect_anomalies`` over frames."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast.anomalies import (
    DEFAULT_COOLDOWN,
    DEFAULT_LOW,
    DEFAULT_THRESHOLD,
    anomaly_id,
    detect,
)
from cloudbalance.forecast.base import Forecaster
from cloudbalance.forecast.core import SeriesOutput, Spec, run_series
from cloudbalance.forecast.executors import Executor, run_chunks
from cloudbalance.forecast.feedback import Label, matching_feedback
from cloudbalance.forecast.prepare import Aggregate, Prepared, prepare_series
from cloudbalance.forecast.spikes import (
    SpikeRule,
    SpikeWarning,
    spike_warnings,
    warnings_frame,
)
from cloudbalance.schema import ACCURACY, FORECAST, validate_forecast

__all__ = [
    "ANOMALY_COLUMNS",
    "ForecastResult",
    "anomaly_events",
    "backtest",
    "detect_anomalies",
    "forecast",
]

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
    robust: bool = True,
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
        robust: Fit models on the history with its outliers (short incidents, see
            :func:`cloudbalance.forecast.anomalies.robust_history`) replaced by their expected
            values; errors are still measured on the raw series.
        spikes: The spike rule (default: 25% above the recent median, with the probability
            cut chosen per series from its backtests).
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
        robust=robust,
        holidays_country=holidays_country,
        prophet_backend=prophet_backend,
        seed=seed,
        warm=None,
        rebacktest=rebacktest,
        spikes=rule,
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
        if (
            out.ds is None
            or out.yhat is None
            or out.lower is None
            or out.upper is None
            or out.spike_score is None
        ):
            raise ForecastError("the model returned no forecast", unique_id=out.unique_id)
        levels[out.unique_id] = out.history_level
        score = out.spike_score
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
                    "spike": score >= out.spike_cut,
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


#: Columns of the anomaly frame, in order.
ANOMALY_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "ds",
    "y",
    "anomaly",
    "score",
    "expected",
    "anomaly_id",
    "anomaly_kind",
    "impact",
    "feedback",
)


def detect_anomalies(
    series: pd.DataFrame,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    low: float = DEFAULT_LOW,
    cooldown: float = DEFAULT_COOLDOWN,
    freq: str | None = None,
    aggregate: Aggregate = "sum",
    feedback: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Flag anomalous incidents in history, one row per observed point.

    Columns: ``unique_id, ds, y, anomaly, score, expected, anomaly_id, anomaly_kind, impact,
    feedback``.
    ``score`` is the robust z-score of the point's residual from its seasonal expectation;
    ``anomaly`` marks the alerted points: the first run of each incident (see
    :mod:`cloudbalance.forecast.anomalies`; later runs the cool-down merged into it are not
    alerted again); ``anomaly_id`` names the incident a point belongs to (also when feedback
    suppressed it, and on its later runs), ``anomaly_kind`` what kind of incident it is
    (``spike``: a point far beyond the series' bar; ``shift``: a sustained run of moderate
    scores, a level that moved), ``impact`` is the incident's ``sum(y - expected)`` (money for
    cost series) and ``feedback`` the label that applies to it (``YES``, ``NO``,
    ``PLANNED_ACTIVITY``; a ``NO`` or planned label means ``anomaly`` is False).
    :func:`anomaly_events` gives one row per incident,
    ranked by impact. Gaps are not rows; duplicated timestamps are aggregated first.

    Args:
        series: ``unique_id, ds, y``; empty ``y`` values are gaps.
        threshold: The highest ``|score|`` bar that triggers an incident (heavy-tailed
            series); quieter series get a calibrated lower bar, down to ``low``.
        low: ``|score|`` that extends an incident to its neighbouring points.
        cooldown: Seasons (days of sub-daily data, weeks of daily data) after an incident
            during which a new one is the same incident.
        freq: Force a frequency instead of inferring it per series.
        aggregate: How duplicated timestamps combine.
        feedback: Labels from ``Store.anomaly_feedback()`` (see
            :mod:`cloudbalance.forecast.feedback`).

    Raises:
        ForecastError: A threshold that is not a positive number.
    """
    for name, value in (("threshold", threshold), ("low", low)):
        if value <= 0 or not math.isfinite(value):
            raise ForecastError(f"{name} must be a positive number, got {value}")
    if cooldown < 0 or not math.isfinite(cooldown):
        raise ForecastError(f"cooldown must be zero or more, got {cooldown}")
    frames = []
    for prep in _prepare(series, freq=freq, aggregate=aggregate):
        frames.append(_anomaly_frame(prep, threshold, low, cooldown, feedback))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=_anomaly_dtype(c)) for c in ANOMALY_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def _anomaly_dtype(column: str) -> str:
    if column == "ds":
        return "datetime64[us]"
    if column == "anomaly":
        return "bool"
    if column in ("unique_id", "anomaly_id", "anomaly_kind", "feedback"):
        return "object"
    return "float64"


def _anomaly_frame(
    prep: Prepared,
    threshold: float,
    low: float,
    cooldown: float,
    feedback: pd.DataFrame | None,
) -> pd.DataFrame:
    n = prep.y.size
    flag = np.zeros(n, dtype=bool)
    ids = np.full(n, None, dtype=object)
    kinds = np.full(n, None, dtype=object)
    labels = np.full(n, None, dtype=object)
    impact = np.full(n, np.nan)
    if prep.observed < 3:
        expected = np.full(n, np.nan)
        score = np.zeros(n)
    else:
        found = detect(prep, threshold=threshold, low=low, cooldown=cooldown)
        expected, score = found.expected, found.score
        for inc in found.incidents:
            span = slice(inc.start, inc.end + 1)
            aid = anomaly_id(prep.unique_id, prep.ds[inc.start], prep.step_ns)
            label = matching_feedback(
                feedback,
                prep.unique_id,
                aid,
                pd.Timestamp(prep.ds[inc.start]),
                inc.impact,
                prep.step_ns,
            )
            # the incident's unusual points; quiet points inside a merged incident are not
            members = np.zeros(n, dtype=bool)
            members[span] = np.abs(score[span]) > min(low, threshold)
            members[inc.trigger] = True  # a shift's trigger can be below low: still its alert
            ids[members] = aid
            kinds[members] = inc.kind
            labels[members] = label
            impact[members] = inc.impact
            # one alert per incident: its first run; runs the cool-down merged raise none
            alert = members.copy()
            alert[inc.alert_end + 1 :] = False
            flag[alert] = label is None or not Label(label).suppresses
    ok = np.isfinite(prep.y)
    return pd.DataFrame(
        {
            "unique_id": prep.unique_id,
            "ds": prep.ds[ok].astype("datetime64[us]"),
            "y": prep.y[ok],
            "anomaly": flag[ok],
            "score": score[ok],
            "expected": expected[ok],
            "anomaly_id": ids[ok],
            "anomaly_kind": kinds[ok],
            "impact": impact[ok],
            "feedback": labels[ok],
        }
    )


def anomaly_events(anomalies: pd.DataFrame) -> pd.DataFrame:
    """One row per incident of a :func:`detect_anomalies` frame, largest ``|impact|`` first.

    Columns: ``anomaly_id, unique_id, anomaly_kind, start, end, peak_ds, peak_score, points,
    actual, expected, impact, anomaly, feedback``; ``anomaly_kind`` is ``spike`` or ``shift``.
    ``anomaly`` is False for incidents a label suppressed; they are listed so the history of
    labelled incidents stays visible.
    """
    cols = [
        "anomaly_id",
        "unique_id",
        "anomaly_kind",
        "start",
        "end",
        "peak_ds",
        "peak_score",
        "points",
        "actual",
        "expected",
        "impact",
        "anomaly",
        "feedback",
    ]
    rows = []
    part = anomalies[anomalies["anomaly_id"].notna()]
    for aid, g in part.groupby("anomaly_id", sort=False):
        peak = int(np.argmax(np.abs(g["score"].to_numpy(np.float64))))
        rows.append(
            {
                "anomaly_id": aid,
                "unique_id": g["unique_id"].iloc[0],
                "anomaly_kind": g["anomaly_kind"].iloc[0] if "anomaly_kind" in g else None,
                "start": g["ds"].min(),
                "end": g["ds"].max(),
                "peak_ds": g["ds"].iloc[peak],
                "peak_score": float(g["score"].iloc[peak]),
                "points": len(g),
                "actual": float(g["y"].sum()),
                "expected": float(g["expected"].sum()),
                "impact": float(g["impact"].iloc[0]),
                "anomaly": bool(g["anomaly"].iloc[0]),
                "feedback": g["feedback"].iloc[0],
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    if out.empty:
        return out
    order = np.argsort(-np.abs(out["impact"].to_numpy(np.float64)), kind="stable")
    return out.iloc[order].reset_index(drop=True)
