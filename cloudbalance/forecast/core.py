"""The per-series pipeline: backtest the candidates, choose, calibrate, fit, forecast.

Everything here works on one :class:`~cloudbalance.forecast.prepare.Prepared` series and returns
plain arrays and dicts, so a chunk of series can be shipped to a worker process or a Dask worker
and back cheaply. :mod:`cloudbalance.forecast.api` turns the results into frames.

Model choice (``model="auto"``, the default): every candidate (two Prophet configurations, Theta,
seasonal naive, and the mean of Prophet and Theta) is scored on rolling-origin backtests, and the
one with the lowest mean MASE wins, but only if it beats seasonal naive; otherwise seasonal naive
is the forecast. So on backtests the default is never worse than seasonal naive, and the
``reason`` column says which model won, by how much, against what.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from cloudbalance.exceptions import ForecastError, InsufficientHistoryError
from cloudbalance.forecast.anomalies import FitHistory, calendar_values, fit_history
from cloudbalance.forecast.base import Forecaster, Prediction
from cloudbalance.forecast.baseline import RobustLevel, SeasonalNaive, SpotPrice, Theta
from cloudbalance.forecast.calibrate import Calibration, apply_factor, calibrate, level_floor
from cloudbalance.forecast.prepare import Prepared
from cloudbalance.forecast.prophet import ProphetForecaster
from cloudbalance.forecast.spikes import (
    DEFAULT_PROBABILITY,
    SpikeRule,
    exceedance,
    f1_cut,
    spike_scores,
)

__all__ = [
    "AUTO_CANDIDATES",
    "MIN_HISTORY",
    "MODELS",
    "SeriesOutput",
    "Spec",
    "clip_to_history",
    "confidence_score",
    "run_series",
]

FloatArray = npt.NDArray[np.float64]

#: The smallest history ``model="auto"`` forecasts at all (it falls back to naive below the
#: history needed for backtests); fewer observed points raise InsufficientHistoryError.
MIN_HISTORY = 3

ENSEMBLE = "ensemble"
#: Candidates of the default pipeline, in order of preference on ties (simplest first).
AUTO_CANDIDATES: tuple[str, ...] = (
    "seasonal_naive",
    "theta",
    "prophet",
    "prophet_flexible",
    ENSEMBLE,
)
#: Appended to the reason when the choice and calibration come from a previous run.
WARM_NOTE = " [warm start: choice and calibration kept from the previous run]"
#: What the ensemble combines, weighted by backtest skill.
ENSEMBLE_MEMBERS: tuple[str, ...] = ("seasonal_naive", "theta", "prophet", "prophet_flexible")


@dataclass(frozen=True)
class Spec:
    """What to do for every series (picklable, shipped to workers).

    Attributes:
        horizon: Steps to forecast.
        level: Nominal interval coverage (0.8).
        model: ``auto``, a registered name, or a Forecaster instance.
        windows: Rolling-origin backtest windows (0 = no backtests, no calibration).
        calibrate: Apply the conformal factor to the final interval.
        holidays_country: Country whose holidays Prophet models.
        prophet_backend: ``numpy`` (fast) or ``stan`` (the prophet library).
        seed: Seed of interval simulations.
        robust: Fit models on the history with outlying incidents replaced by their expected
            values (errors are still measured on the raw series).
        warm: Per-series state of a previous run (``ForecastResult.state``).
        rebacktest: With ``warm``, re-run backtests and model choice instead of reusing them.
        spikes: The spike rule the ``spike`` flags follow.
    """

    horizon: int
    level: float = 0.8
    model: str | Forecaster = "auto"
    windows: int = 3
    calibrate: bool = True
    holidays_country: str | None = None
    prophet_backend: str = "numpy"
    seed: int = 0
    robust: bool = True
    warm: dict[str, dict[str, Any]] | None = None
    rebacktest: bool = False
    spikes: SpikeRule = field(default_factory=SpikeRule)


@dataclass
class SeriesOutput:
    """What one series produced (or the error it raised)."""

    unique_id: str
    ds: npt.NDArray[np.datetime64] | None = None
    yhat: FloatArray | None = None
    lower: FloatArray | None = None
    upper: FloatArray | None = None
    model: str = ""
    accuracy: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    history_level: float = math.nan
    spike_score: FloatArray | None = None
    spike_cut: float = DEFAULT_PROBABILITY
    error: ForecastError | None = None
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)


def _prophet(spec: Spec, **kwargs: Any) -> ProphetForecaster:
    return ProphetForecaster(
        holidays_country=spec.holidays_country,
        backend=spec.prophet_backend,  # type: ignore[arg-type]
        seed=spec.seed,
        **kwargs,
    )


#: Registered model names -> factory(season, spec).
MODELS: dict[str, Callable[[int, Spec], Forecaster]] = {
    "prophet": lambda season, spec: _prophet(spec),
    "prophet_flexible": lambda season, spec: _prophet(
        spec, changepoint_prior_scale=0.5, changepoint_range=0.9, name="prophet_flexible"
    ),
    "theta": lambda season, spec: Theta(season),
    "seasonal_naive": lambda season, spec: SeasonalNaive(season),
    "level": lambda season, spec: RobustLevel(),
    "spot": lambda season, spec: SpotPrice(),
}


def _model(name: str, season: int, spec: Spec) -> Forecaster:
    try:
        return MODELS[name](season, spec)
    except KeyError:
        valid = ", ".join(sorted([*MODELS, "auto", ENSEMBLE]))
        raise ForecastError(f"unknown model {name!r} (valid: {valid})") from None


def _season_for(prep: Prepared) -> int:
    season = prep.season
    # too short for a seasonal baseline: fall back to the plain (season 1) naive
    return season if prep.observed >= 2 * season + 1 else 1


def _fit_predict(
    model: Forecaster,
    ds: npt.NDArray[np.datetime64],
    history: FitHistory,
    step_ns: int,
    horizon: int,
    level: float,
    uid: str,
    init: dict[str, Any] | None = None,
) -> tuple[Prediction, dict[str, Any]]:
    """Fit on the prepared history; the forecast gets the calendar peaks back, then the clip."""
    fitted = model.fit(ds, history.y, step_ns=step_ns, unique_id=uid, init=init)
    pred = fitted.predict(horizon, level)
    if history.calendar:
        bump = calendar_values(pred.ds, history.calendar)
        pred = Prediction(
            ds=pred.ds, yhat=pred.yhat + bump, lower=pred.lower + bump, upper=pred.upper + bump
        )
    raw = history.y + calendar_values(ds, history.calendar) if history.calendar else history.y
    return clip_to_history(pred, raw), fitted.params


def clip_to_history(pred: Prediction, y: FloatArray) -> Prediction:
    """A series that has never been negative gets a forecast that is never negative.

    Costs, requests and replicas cannot go below zero; a symmetric interval around a low
    forecast would say they can ("-5 USD/day"). Clipping here, where every candidate is fitted,
    means backtests, model choice and calibration all judge the forecasts users will see.
    """
    finite = y[np.isfinite(y)]
    if finite.size == 0 or float(finite.min()) < 0:
        return pred
    return Prediction(
        ds=pred.ds,
        yhat=np.maximum(pred.yhat, 0.0),
        lower=np.maximum(pred.lower, 0.0),
        upper=np.maximum(pred.upper, 0.0),
    )


def _mase_scale(y: FloatArray, season: int) -> float:
    finite = y[np.isfinite(y)]
    if y.size > season:
        diffs = np.abs(y[season:] - y[:-season])
        diffs = diffs[np.isfinite(diffs)]
    else:
        diffs = np.array([])
    scale = float(diffs.mean()) if diffs.size else 0.0
    level = float(np.mean(np.abs(finite))) if finite.size else 0.0
    # a constant training series has no naive error; measure against a tiny share of its level
    return max(scale, 1e-3 * level, 1e-9)


def _smape(y: FloatArray, yhat: FloatArray) -> FloatArray:
    den = np.abs(y) + np.abs(yhat)
    out: FloatArray = np.where(den > 0, 2 * np.abs(y - yhat) / np.where(den > 0, den, 1), 0.0)
    return out


def confidence_score(
    *, mase: float, smape: float, interval: float, coverage: float, windows: int
) -> float:
    """The planner's confidence in a series' forecast, in [0, 1], from its backtests.

    ``confidence = accuracy * skill * calibration * evidence`` where

    - ``accuracy = 1 - sMAPE / 2`` (sMAPE is in [0, 2]; 0 = perfect),
    - ``skill = min(1, 1 / MASE) ** 0.5`` (no penalty when at least as good as seasonal naive),
    - ``calibration = max(0, 1 - |coverage - interval| / interval)`` using the calibrated
      coverage, so an interval that lies about its coverage lowers confidence,
    - ``evidence = min(1, windows / 3)`` (fewer than three backtest windows is less evidence).

    No backtest (``windows == 0``) means confidence 0: nothing was measured.
    """
    if windows <= 0 or not math.isfinite(mase) or not math.isfinite(smape):
        return 0.0
    accuracy = max(0.0, 1.0 - smape / 2.0)
    skill = min(1.0, 1.0 / max(mase, 1e-9)) ** 0.5
    cal = 1.0 if not math.isfinite(coverage) else max(0.0, 1 - abs(coverage - interval) / interval)
    evidence = min(1.0, windows / 3.0)
    return float(np.clip(accuracy * skill * cal * evidence, 0.0, 1.0))


@dataclass
class _Backtest:
    """Stacked backtest predictions of one candidate over all windows."""

    y: list[FloatArray] = field(default_factory=list)
    yhat: list[FloatArray] = field(default_factory=list)
    lower: list[FloatArray] = field(default_factory=list)
    upper: list[FloatArray] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    failed: str | None = None

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, npt.NDArray[Any]]:
        win = np.concatenate([np.full(a.size, i) for i, a in enumerate(self.y)])
        return (
            np.concatenate(self.y),
            np.concatenate(self.yhat),
            np.concatenate(self.lower),
            np.concatenate(self.upper),
            win.astype(np.int64),
        )

    def metrics(self) -> tuple[float, float]:
        """Mean MASE over windows and sMAPE over all points (NaN actuals skipped)."""
        mases, smapes = [], []
        for y, yh, sc in zip(self.y, self.yhat, self.scale, strict=True):
            ok = np.isfinite(y)
            if not ok.any():
                continue
            mases.append(float(np.mean(np.abs(y[ok] - yh[ok]))) / sc)
            smapes.append(_smape(y[ok], yh[ok]))
        if not mases:
            return math.nan, math.nan
        return float(np.mean(mases)), float(np.mean(np.concatenate(smapes)))


def _fit_history(
    prep: Prepared, spec: Spec, end: int | None = None, model: Forecaster | None = None
) -> FitHistory:
    """What ``model`` is fitted on: the history up to ``end`` (see ``fit_history``).

    Each backtest origin cleans only its own past, so backtests never see the future. A model
    with a true ``raw_history`` attribute models the series' irregular parts itself (the spot
    price model learns from its spikes) and gets the history as observed: no outliers taken
    out, no calendar offsets learned (spikes that happen to fall on the same days of the month
    would pass for a calendar peak).
    """
    part = prep if end is None else replace(prep, ds=prep.ds[:end], y=prep.y[:end])
    if model is not None and _raw(model):
        return FitHistory(part.y, {})
    return fit_history(part, robust=spec.robust)


def _raw(model: Forecaster) -> bool:
    return bool(getattr(model, "raw_history", False))


def _origins(n: int, horizon: int, windows: int, min_train: int) -> tuple[list[int], int]:
    """Window starts (grid indices) and the backtest horizon; empty when the history is short."""
    if windows <= 0:
        return [], 0
    h = min(horizon, max(1, (n - min_train) // windows))
    if n - min_train < h or h < 1:
        return [], 0
    count = min(windows, (n - min_train) // h)
    return [n - (count - i) * h for i in range(count)], h


def run_backtests(
    prep: Prepared, names: Sequence[str], spec: Spec, season: int
) -> tuple[dict[str, _Backtest], int]:
    """Rolling-origin backtests of each named candidate (the ensemble is derived, not fitted)."""
    fitted_names = [n for n in names if n != ENSEMBLE]
    if ENSEMBLE in names:
        fitted_names += [m for m in ENSEMBLE_MEMBERS if m not in fitted_names]
    models = {name: _model(name, season, spec) for name in fitted_names}
    observed_before = np.cumsum(~np.isnan(prep.y))
    min_train = max(m.min_history for m in models.values())
    # grid index where the training part has min_train observed points
    reach = np.searchsorted(observed_before, min_train) + 1
    origins, h = _origins(prep.y.size, spec.horizon, spec.windows, int(reach))
    results = {name: _Backtest() for name in fitted_names}
    for origin in origins:
        ds_tr, y_tr = prep.ds[:origin], _fit_history(prep, spec, origin)
        y_te = prep.y[origin : origin + h]
        scale = _mase_scale(prep.y[:origin], season)  # errors are judged on the raw series
        for name, model in models.items():
            bt = results[name]
            if bt.failed:
                continue
            fit_y = _fit_history(prep, spec, origin, model) if _raw(model) else y_tr
            try:
                pred, _ = _fit_predict(
                    model, ds_tr, fit_y, prep.step_ns, h, spec.level, prep.unique_id
                )
            except ForecastError as err:
                bt.failed = str(err)
                continue
            bt.y.append(y_te)
            bt.yhat.append(pred.yhat)
            bt.lower.append(pred.lower)
            bt.upper.append(pred.upper)
            bt.scale.append(scale)
            bt.origin.append(origin)
    if ENSEMBLE in names:
        results[ENSEMBLE] = _ensemble_backtest(results, len(origins))
    # the ensemble's members stay in: their backtests are the evidence behind its weights
    return {k: v for k, v in results.items() if k in names or ENSEMBLE in names}, len(origins)


def _window_mase(bt: _Backtest, i: int) -> float:
    y, yh = bt.y[i], bt.yhat[i]
    ok = np.isfinite(y)
    return float(np.mean(np.abs(y[ok] - yh[ok]))) / bt.scale[i] if ok.any() else math.nan


def _weighted(arrays: dict[str, FloatArray], weights: dict[str, float]) -> FloatArray:
    out: FloatArray = np.sum([weights[m] * a for m, a in arrays.items()], axis=0)
    return out


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def ensemble_weights(mases: dict[str, float]) -> dict[str, float]:
    """Weights of the ensemble members from their backtest MASE: ``1 / MASE^2``, normalised.

    Inverse squared error weights the skilful members most while keeping every member in
    (a hedge when the backtests are few and noisy); members with no finite score get nothing,
    and with no scores at all the members are weighted equally.
    """
    finite = {n: m for n, m in mases.items() if math.isfinite(m)}
    if not finite:
        return {n: 1.0 / len(mases) for n in mases} if mases else {}
    raw = {n: 1.0 / max(m, 1e-6) ** 2 for n, m in finite.items()}
    total = sum(raw.values())
    return {n: w / total for n, w in raw.items()}


def _ensemble_backtest(results: dict[str, _Backtest], windows: int) -> _Backtest:
    """The ensemble's backtest, honest: each window is combined with weights from the others."""
    parts = {m: results[m] for m in ENSEMBLE_MEMBERS if m in results}
    parts = {m: p for m, p in parts.items() if p.y and not p.failed and len(p.y) == windows}
    ens = _Backtest()
    if not parts:
        ens.failed = "no ensemble member could be backtested"
        return ens
    for i in range(windows):
        others = {
            m: _finite_mean([_window_mase(p, j) for j in range(windows) if j != i])
            for m, p in parts.items()
        }
        w = ensemble_weights(others)
        first = next(iter(parts.values()))
        ens.y.append(first.y[i])
        ens.yhat.append(_weighted({m: parts[m].yhat[i] for m in w}, w))
        ens.lower.append(_weighted({m: parts[m].lower[i] for m in w}, w))
        ens.upper.append(_weighted({m: parts[m].upper[i] for m in w}, w))
        ens.scale.append(first.scale[i])
        ens.origin.append(first.origin[i])
    return ens


def _choose(metrics: dict[str, tuple[float, float]]) -> tuple[str, str]:
    """Lowest mean MASE; seasonal naive unless something is strictly better."""
    ranked = sorted(
        (m[0], AUTO_CANDIDATES.index(n) if n in AUTO_CANDIDATES else 99, n)
        for n, m in metrics.items()
        if math.isfinite(m[0])
    )
    if not ranked:
        return "seasonal_naive", "no candidate could be backtested; seasonal naive"
    best_mase, _, best = ranked[0]
    naive = metrics.get("seasonal_naive", (math.nan, math.nan))[0]
    others = ", ".join(f"{n} {m:.3f}" for m, _, n in ranked if n != best)
    if math.isfinite(naive) and best_mase >= naive and best != "seasonal_naive":
        best = "seasonal_naive"
    if best == "seasonal_naive":
        why = f"seasonal_naive: no candidate beat it on backtest MASE ({naive:.3f}; {others})"
    else:
        gain = (
            f", {100 * (1 - best_mase / naive):.0f}% better than seasonal naive"
            if (math.isfinite(naive) and naive > 0)
            else ""
        )
        why = f"{best}: lowest backtest MASE {best_mase:.3f}{gain} (others: {others})"
    return best, why


def _history_level(y: FloatArray, season: int) -> float:
    """The normal level relative spike rules compare with: the median of the last 4 seasons."""
    finite = y[np.isfinite(y)]
    tail = finite[-max(4 * season, 7) :]
    return float(np.median(tail)) if tail.size else math.nan


def _unit(level: float) -> float:
    """The unit spike errors are measured in: the normal level's size (1 when it has none)."""
    size = abs(level)
    return size if math.isfinite(size) and size > 0 else 1.0


def _spike_errors(prep: Prepared, bt: _Backtest | None) -> list[FloatArray]:
    """Per backtest window of the chosen model, its errors in units of the level at its origin.

    Errors are measured on the raw series (bursts included), like MASE.
    """
    if bt is None or bt.failed:
        return []
    return [
        (y - yhat) / _unit(_history_level(prep.y[:origin], prep.season))
        for origin, y, yhat in zip(bt.origin, bt.y, bt.yhat, strict=True)
    ]


def _spike_cut(prep: Prepared, spec: Spec, bt: _Backtest, errors: list[FloatArray]) -> float:
    """The series' cut: the F1 its backtest probabilities expect is best at (see ``f1_cut``).

    Each window is scored with the errors of the other windows (as a forecast is scored with
    errors it has not seen); a single window is scored with its own.
    """
    scores = []
    for i, (origin, y, yhat) in enumerate(zip(bt.origin, bt.y, bt.yhat, strict=True)):
        level = _history_level(prep.y[:origin], prep.season)
        others = [e for j, e in enumerate(errors) if j != i] or errors
        p = exceedance(
            yhat, np.concatenate(others), _unit(level), spec.spikes.threshold(prep.unique_id, level)
        )
        scores.append(np.where(np.isfinite(y), p, np.nan))
    return f1_cut(np.concatenate(scores))


def _score_spikes(
    prep: Prepared, spec: Spec, out: SeriesOutput, errors: list[FloatArray], cut: float | None
) -> None:
    """Fill ``out.spike_score`` and ``out.spike_cut`` for the final forecast.

    With backtest errors the score is their exceedance share; without (a history too short for
    backtests) the interval read as a normal distribution, and the default cut.
    """
    if out.yhat is None or out.lower is None or out.upper is None:
        raise ForecastError("the model returned no forecast", unique_id=prep.unique_id)
    rule = spec.spikes
    threshold = rule.threshold(prep.unique_id, out.history_level)
    pooled = np.concatenate(errors) if errors else np.array([])
    if np.isfinite(pooled).any():
        out.spike_score = exceedance(out.yhat, pooled, _unit(out.history_level), threshold)
    else:
        out.spike_score = spike_scores(out.yhat, out.lower, out.upper, threshold, spec.level)
        cut = None
    if rule.probability is not None:
        out.spike_cut = rule.probability
    else:
        out.spike_cut = DEFAULT_PROBABILITY if cut is None else cut


def run_series(prep: Prepared, spec: Spec) -> SeriesOutput:
    """Forecast one series end to end; errors are returned, not raised (the caller decides)."""
    out = SeriesOutput(unique_id=prep.unique_id, notes=prep.notes)
    try:
        _run(prep, spec, out)
    except ForecastError as err:
        if err.unique_id is None and type(err) is ForecastError:
            named = ForecastError(str(err), unique_id=prep.unique_id)
            named.__cause__ = err
            err = named
        out.error = err
    return out


def _run(prep: Prepared, spec: Spec, out: SeriesOutput) -> None:
    uid = prep.unique_id
    out.history_level = _history_level(prep.y, prep.season)
    if spec.horizon < 1:
        raise ForecastError("horizon must be at least 1", unique_id=uid)
    if prep.observed < MIN_HISTORY:
        raise InsufficientHistoryError(unique_id=uid, points=prep.observed, minimum=MIN_HISTORY)
    season = _season_for(prep)
    warm = (spec.warm or {}).get(uid)
    auto = isinstance(spec.model, str) and spec.model == "auto"
    model_name = spec.model.name if not isinstance(spec.model, str) else spec.model

    if warm is not None and not spec.rebacktest and warm.get("model"):
        chosen = str(warm["model"]) if auto else model_name
        if chosen == str(warm["model"]) and warm.get("accuracy"):
            params = _final(
                prep,
                spec,
                out,
                chosen,
                season,
                warm.get("factor", 1.0),
                warm.get("floor", 0.0),
                warm.get("params"),
                (warm.get("params") or {}).get("weights"),
            )
            kept = {**warm["accuracy"], "unique_id": uid}
            errors = [np.asarray(e, dtype=np.float64) for e in warm.get("spike_errors", [])]
            _score_spikes(prep, spec, out, errors, warm.get("spike_cut"))
            out.accuracy = {**kept, "reason": f"{kept.get('reason', '')}{WARM_NOTE}"}
            out.state = {**warm, "params": params, "accuracy": kept}
            return

    if auto:
        names: Sequence[str] = AUTO_CANDIDATES
    elif isinstance(spec.model, str):
        if spec.model != ENSEMBLE:
            _model(spec.model, season, spec)  # unknown names fail here, listing the valid ones
        names = (
            [spec.model, "seasonal_naive"] if spec.model != "seasonal_naive" else ["seasonal_naive"]
        )
    else:
        names = []  # a user Forecaster: backtested below on its own
    if not isinstance(spec.model, str):
        results, windows = _backtest_custom(prep, spec.model, spec, season)
        names = [model_name]
    else:
        results, windows = run_backtests(prep, names, spec, season)
    metrics = {n: r.metrics() for n, r in results.items() if not r.failed and r.y}

    if auto:
        if windows == 0 or not metrics:
            chosen = "seasonal_naive"
            reason = (
                f"seasonal_naive (fallback): {prep.observed} observations are too few for "
                "backtests of the other models"
            )
        else:
            chosen, reason = _choose(metrics)
    else:
        chosen = model_name
        mase = metrics.get(chosen, (math.nan, math.nan))[0]
        naive = metrics.get("seasonal_naive", (math.nan, math.nan))[0]
        reason = f"{chosen}: requested"
        if math.isfinite(mase) and math.isfinite(naive):
            reason += f" (backtest MASE {mase:.3f}, seasonal naive {naive:.3f})"

    cal = Calibration(1.0, math.nan, math.nan, 0, 0.0)
    bt = results.get(chosen)
    if bt is not None and bt.y and not bt.failed:
        y, yh, lo, hi, win = bt.arrays()
        cal = calibrate(y, yh, lo, hi, win, spec.level)
    for name, res in results.items():
        if name in metrics:
            c = cal if name == chosen else calibrate(*res.arrays(), spec.level)
            out.candidates[name] = {
                "mase": metrics[name][0],
                "smape": metrics[name][1],
                "coverage": c.coverage,
                "coverage_calibrated": c.coverage_calibrated,
                "factor": c.factor,
            }
    factor = cal.factor if spec.calibrate else 1.0
    mase, smape = metrics.get(chosen, (math.nan, math.nan))
    coverage_cal = cal.coverage_calibrated if spec.calibrate else cal.coverage
    confidence = confidence_score(
        mase=mase,
        smape=smape,
        interval=spec.level,
        coverage=coverage_cal,
        windows=windows if chosen in metrics else 0,
    )
    if spec.calibrate and cal.points and factor != 1.0:
        reason += f"; interval scaled by {factor:.2f} (backtest coverage {cal.coverage:.0%})"
    weights = None
    if chosen == ENSEMBLE:
        member_mase = {m: metrics[m][0] for m in ENSEMBLE_MEMBERS if m in metrics}
        weights = ensemble_weights(member_mase)
        shares = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
        reason += f"; weights by backtest skill: {shares}"
    params = _final(prep, spec, out, chosen, season, factor, cal.floor, None, weights)
    errors = _spike_errors(prep, bt)
    cut = _spike_cut(prep, spec, bt, errors) if errors and bt is not None else None
    _score_spikes(prep, spec, out, errors, cut)
    out.accuracy = {
        "unique_id": uid,
        "model": chosen,
        "mase": mase,
        "smape": smape,
        "interval": spec.level,
        "coverage": cal.coverage,
        "coverage_calibrated": coverage_cal,
        "windows": float(windows if chosen in metrics else 0),
        "confidence": confidence,
        "reason": reason,
    }
    out.state = {
        "model": chosen,
        "factor": factor,
        "floor": cal.floor,
        "spike_errors": [e[np.isfinite(e)].tolist() for e in errors],
        "spike_cut": cut,
        "params": params,
        "accuracy": dict(out.accuracy),
    }


def _backtest_custom(
    prep: Prepared, model: Forecaster, spec: Spec, season: int
) -> tuple[dict[str, _Backtest], int]:
    local: dict[str, Forecaster] = {model.name: model, "seasonal_naive": SeasonalNaive(season)}
    results: dict[str, _Backtest] = {}
    observed_before = np.cumsum(~np.isnan(prep.y))
    min_train = max(m.min_history for m in local.values())
    reach = int(np.searchsorted(observed_before, min_train)) + 1
    origins, h = _origins(prep.y.size, spec.horizon, spec.windows, reach)
    for name, m in local.items():
        bt = _Backtest()
        for origin in origins:
            try:
                pred, _ = _fit_predict(
                    m,
                    prep.ds[:origin],
                    _fit_history(prep, spec, origin, m),
                    prep.step_ns,
                    h,
                    spec.level,
                    prep.unique_id,
                )
            except ForecastError as err:
                bt.failed = str(err)
                break
            bt.y.append(prep.y[origin : origin + h])
            bt.yhat.append(pred.yhat)
            bt.lower.append(pred.lower)
            bt.upper.append(pred.upper)
            bt.scale.append(_mase_scale(prep.y[:origin], season))
            bt.origin.append(origin)
        results[name] = bt
    return results, len(origins)


def _final(
    prep: Prepared,
    spec: Spec,
    out: SeriesOutput,
    chosen: str,
    season: int,
    factor: float,
    floor: float,
    init: dict[str, Any] | None,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Fit the chosen model on the whole history and forecast, with the calibrated interval.

    ``weights`` are the ensemble's member weights (from the backtests, or a warm start).
    """
    uid = prep.unique_id
    params: dict[str, Any] = {}
    fit_y = _fit_history(prep, spec)
    if chosen == ENSEMBLE:
        weights = dict(weights or ensemble_weights(dict.fromkeys(ENSEMBLE_MEMBERS, math.nan)))
        preds = {}
        for member in weights:
            member_init = (init or {}).get(member)
            pred, p = _fit_predict(
                _model(member, season, spec),
                prep.ds,
                fit_y,
                prep.step_ns,
                spec.horizon,
                spec.level,
                uid,
                member_init,
            )
            preds[member] = pred
            params[member] = p
        params["weights"] = weights
        yhat = _weighted({m: p.yhat for m, p in preds.items()}, weights)
        lower = _weighted({m: p.lower for m, p in preds.items()}, weights)
        upper = _weighted({m: p.upper for m, p in preds.items()}, weights)
        ds = next(iter(preds.values())).ds
    else:
        model: Forecaster = (
            spec.model
            if not isinstance(spec.model, str) and spec.model.name == chosen
            else _model(chosen, season, spec)
        )
        if _raw(model):
            fit_y = _fit_history(prep, spec, model=model)
        pred, params = _fit_predict(
            model, prep.ds, fit_y, prep.step_ns, spec.horizon, spec.level, uid, init
        )
        yhat, lower, upper, ds = pred.yhat, pred.lower, pred.upper, pred.ds
    if factor != 1.0:
        lower, upper = apply_factor(yhat, lower, upper, factor, floor or level_floor(prep.y))
        scaled = clip_to_history(Prediction(ds=ds, yhat=yhat, lower=lower, upper=upper), prep.y)
        lower, upper = scaled.lower, scaled.upper
    out.ds, out.yhat = ds, yhat
    out.lower, out.upper = np.minimum(lower, yhat), np.maximum(upper, yhat)
    out.model = chosen
    return params
