"""Baselines and fallbacks: seasonal naive and a Theta model, both numpy-only and fast.

Seasonal naive repeats the last season; it is the bar the default pipeline must never fall below
(and the denominator of MASE). Theta (Assimakopoulos & Nikolopoulos, in the SES-with-drift form of
Hyndman & Billah) is the "one fast statistical model": it won the M3 competition, needs no
optimiser beyond one bounded scalar search, and handles the flat and step-shaped series on which
Prophet's trend extrapolation is most often wrong. Intervals of both come from the spread of their
own one-step in-sample errors, grown with the horizon; calibration then corrects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from cloudbalance.forecast.base import Prediction, future_ds, require_history

__all__ = ["RobustLevel", "SeasonalNaive", "SpotPrice", "Theta"]

FloatArray = npt.NDArray[np.float64]


def _fill(y: FloatArray) -> FloatArray:
    """Gaps filled by carrying the last value forward (first values backward)."""
    out = y.copy()
    mask = np.isnan(out)
    if not mask.any():
        return out
    if mask.all():
        return np.zeros_like(out)
    idx = np.where(~mask, np.arange(out.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = out[idx]
    first = int(np.flatnonzero(~np.isnan(y))[0])
    out[:first] = y[first]
    return out


def _z(level: float) -> float:
    return float(special.ndtri(0.5 + level / 2))


def _symmetric(ds: Any, yhat: Any, half: Any) -> Prediction:
    """A prediction whose interval is ``yhat`` plus or minus ``half`` (normal errors)."""
    return Prediction(ds=ds, yhat=yhat, lower=yhat - half, upper=yhat + half)


@dataclass
class FittedNaive:
    """Seasonal naive: the last full season, repeated."""

    last_season: FloatArray
    sigma: float
    last_ds: np.datetime64
    step_ns: int
    season: int
    model: str = "seasonal_naive"

    @property
    def params(self) -> dict[str, Any]:
        """Nothing to warm-start from."""
        return {}

    def predict(self, horizon: int, level: float) -> Prediction:
        """Repeat the last season; the interval grows with the number of seasons ahead."""
        reps = np.arange(horizon) % self.season
        yhat = self.last_season[reps]
        seasons_ahead = np.floor(np.arange(horizon) / self.season) + 1
        half = _z(level) * self.sigma * np.sqrt(seasons_ahead)
        return _symmetric(future_ds(self.last_ds, self.step_ns, horizon), yhat, half)


class SeasonalNaive:
    """Seasonal naive forecaster (``season`` steps per cycle; 1 = plain naive)."""

    name = "seasonal_naive"

    def __init__(self, season: int = 7) -> None:
        self.season = max(1, int(season))

    @property
    def min_history(self) -> int:
        """One full season and one more point to measure an error."""
        return self.season + 1

    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedNaive:
        """Remember the last season and the spread of seasonal differences."""
        require_history(y, self.min_history, unique_id)
        filled = _fill(y)
        m = self.season
        diffs = filled[m:] - filled[:-m]
        sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else 0.0
        return FittedNaive(
            last_season=filled[-m:].copy(),
            sigma=sigma,
            last_ds=ds[-1],
            step_ns=step_ns,
            season=m,
        )


@dataclass
class FittedTheta:
    """Theta: SES level with half the linear drift, reseasonalised."""

    level: float
    drift: float
    alpha: float
    sigma: float
    seasonal: FloatArray
    phase: int
    last_ds: np.datetime64
    step_ns: int
    n: int
    model: str = "theta"

    @property
    def params(self) -> dict[str, Any]:
        """The smoothing weight, a good start for the next day's search."""
        return {"alpha": self.alpha}

    def predict(self, horizon: int, level: float) -> Prediction:
        """Point forecast and an SES-style interval (variance grows with ``alpha``)."""
        h = np.arange(1, horizon + 1, dtype=np.float64)
        a = self.alpha
        drift = self.drift * (h - 1 + 1 / a - ((1 - a) ** self.n) / a)
        base = self.level + drift
        season_idx = (self.phase + np.arange(horizon)) % self.seasonal.size
        yhat = base + self.seasonal[season_idx]
        half = _z(level) * self.sigma * np.sqrt(1 + (h - 1) * a * a)
        return _symmetric(future_ds(self.last_ds, self.step_ns, horizon), yhat, half)


class Theta:
    """The standard Theta method, with additive seasonal adjustment when seasonality is strong."""

    name = "theta"

    def __init__(self, season: int = 7) -> None:
        self.season = max(1, int(season))

    @property
    def min_history(self) -> int:
        """Two full seasons (to estimate the seasonal profile) and at least 4 points."""
        return max(4, 2 * self.season)

    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedTheta:
        """Deseasonalise, fit SES by one-step squared error, add half the OLS slope as drift."""
        require_history(y, self.min_history, unique_id)
        x = _fill(y)
        n = x.size
        m = self.season
        seasonal = np.zeros(m)
        if m > 1 and n >= 2 * m:
            kernel = np.ones(m) / m
            trend = np.convolve(x, kernel, mode="same")
            detr = x - trend
            half = m // 2
            valid = np.zeros(n, dtype=bool)
            valid[half : n - half] = True
            prof = np.array(
                [np.mean(detr[i::m][valid[i::m]]) if valid[i::m].any() else 0.0 for i in range(m)]
            )
            prof -= prof.mean()
            # use the seasonal profile only when it explains a real share of the variance
            resid_var = np.var(detr - prof[np.arange(n) % m])
            if np.var(detr) > 0 and resid_var < 0.9 * np.var(detr):
                seasonal = prof
        sa = x - seasonal[np.arange(n) % m]
        t = np.arange(n, dtype=np.float64)
        slope = float(np.polyfit(t, sa, 1)[0]) if n > 1 else 0.0
        drift = slope / 2

        def sse(alpha: float) -> float:
            return float(np.sum(_ses_errors(sa, alpha) ** 2))

        res = optimize.minimize_scalar(
            sse, bounds=(0.01, 0.99), method="bounded", options={"xatol": 1e-4}
        )
        alpha = float(res.x)
        errors = _ses_errors(sa, alpha)
        level = _ses_level(sa, alpha)
        sigma = float(np.sqrt(np.mean(errors**2))) if errors.size else 0.0
        return FittedTheta(
            level=level,
            drift=drift,
            alpha=alpha,
            sigma=sigma,
            seasonal=seasonal,
            phase=n % m,
            last_ds=ds[-1],
            step_ns=step_ns,
            n=n,
        )


def _ses_errors(x: FloatArray, alpha: float) -> FloatArray:
    """One-step errors of simple exponential smoothing (level started at the first value)."""
    # SES as a linear filter: level_t = alpha * x_t + (1 - alpha) * level_{t-1}
    from scipy.signal import lfilter

    lev, _ = lfilter([alpha], [1, -(1 - alpha)], x[1:], zi=[(1 - alpha) * x[0]])
    prev = np.concatenate([[x[0]], lev[:-1]])
    out: FloatArray = x[1:] - prev
    return out


def _ses_level(x: FloatArray, alpha: float) -> float:
    from scipy.signal import lfilter

    if x.size == 1:
        return float(x[0])
    lev, _ = lfilter([alpha], [1, -(1 - alpha)], x[1:], zi=[(1 - alpha) * x[0]])
    return float(lev[-1])


@dataclass
class FittedLevel:
    """A robust level: the median of the last ``window`` points, flat over the horizon."""

    level: float
    residuals: FloatArray  # how far each past point strayed from the median before it
    last_ds: np.datetime64
    step_ns: int
    window: int
    model: str = "level"

    @property
    def params(self) -> dict[str, Any]:
        """Nothing to warm-start from."""
        return {}

    def predict(self, horizon: int, level: float) -> Prediction:
        """The level, with the ``level`` quantiles of how far one point strays from it."""
        yhat = np.full(horizon, self.level)
        if self.residuals.size:
            lo, hi = np.quantile(self.residuals, [(1 - level) / 2, (1 + level) / 2])
        else:
            lo = hi = 0.0
        return Prediction(
            ds=future_ds(self.last_ds, self.step_ns, horizon),
            yhat=yhat,
            lower=yhat + min(float(lo), 0.0),
            upper=yhat + max(float(hi), 0.0),
        )


class RobustLevel:
    """The median of the last ``window`` points, held flat: the forecast of a noisy price.

    A spot price wanders around a level that shifts now and then, with short spikes on top.
    Persisting today's price (naive, or Theta's fast smoothing) turns noise and spikes into a
    forecast the planner chases, paying move costs for savings that are gone the next day; a
    median of the last days follows the level and ignores a spike until it lasts. The interval
    is the spread of each past point around the median of the ``window`` points before it
    (empirical quantiles: spikes make it skewed up), calibrated later like every model's.
    The window is chosen by the planner's backtest (``benchmarks/backtest_planner.py``).
    """

    name = "level"

    def __init__(self, window: int = 14) -> None:
        self.window = max(1, int(window))

    @property
    def min_history(self) -> int:
        """One window and one more point to measure a residual."""
        return self.window + 1

    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedLevel:
        """Median of the last window; residuals over the last eight windows."""
        require_history(y, self.min_history, unique_id)
        x = _fill(y)
        w = self.window
        start = max(w, x.size - 8 * w)
        windows = np.lib.stride_tricks.sliding_window_view(x[start - w : -1], w)
        residuals = x[start:] - np.median(windows, axis=1)
        return FittedLevel(
            level=float(np.median(x[-w:])),
            residuals=residuals,
            last_ds=ds[-1],
            step_ns=step_ns,
            window=w,
        )


@dataclass
class FittedSpot:
    """A spot price: a base level that follows regime shifts, and the spike in progress.

    Everything is in log price (spikes multiply a price, regimes shift it by a factor), or in
    the price itself when the series is ever <= 0.
    """

    level: float  # the regime's level: robust median of the recent non-spike steps (log)
    since: int  # steps from the last non-spike step to the last step (0: the last is calm)
    premium: float  # how far above the base the spike in progress is (log); 0 when none
    survival: FloatArray  # survival[j]: chance the spike in progress lasts j more steps
    spike_share: float  # share of past steps that were spikes: the chance of a new one
    spike_premium: float  # a typical spike's premium (log), for the risk of a new spike
    errors: FloatArray  # errors[h - 1]: past h-step errors of the level on non-spike steps
    log: bool
    last_ds: np.datetime64
    step_ns: int
    model: str = "spot"

    @property
    def params(self) -> dict[str, Any]:
        """Nothing to warm-start from."""
        return {}

    def predict(self, horizon: int, level: float) -> Prediction:
        """The base, or the spike while it may go on; quantiles of the mixture around them.

        The base is the regime's level. Step ``h`` is still the spike in progress with probability
        ``p_h`` (its survival): the point forecast is the expected price of "spike goes on /
        back to the base", decaying from the spike to the base. The interval also counts the
        chance of a new spike (the past share of spike steps), which the point forecast leaves
        out: it would lift every location's price alike and tell the planner nothing about
        where to go. Around the base a step strays like the base's past errors that many steps
        ahead.
        """
        h = np.arange(1, horizon + 1)
        last = self.survival.size - 1
        going_on = np.where(h <= last, self.survival[np.minimum(h, last)], 0.0)
        ahead = np.minimum(h + self.since, len(self.errors)) - 1
        base = self.level + self.errors[ahead].T  # (points, horizon)
        ongoing = base + self.premium
        new = base + self.spike_premium
        if self.log:
            base, ongoing, new = np.exp(base), np.exp(ongoing), np.exp(new)
        yhat = ((1 - going_on) * base + going_on * ongoing).mean(axis=0)
        fresh = (1 - going_on) * self.spike_share
        values = np.concatenate([base, ongoing, new])
        weights = np.concatenate(
            [
                np.broadcast_to(1 - going_on - fresh, base.shape),
                np.broadcast_to(going_on, ongoing.shape),
                np.broadcast_to(fresh, new.shape),
            ]
        )
        lower = _weighted_quantile(values, weights, (1 - level) / 2)
        upper = _weighted_quantile(values, weights, (1 + level) / 2)
        return Prediction(
            ds=future_ds(self.last_ds, self.step_ns, horizon),
            yhat=yhat,
            lower=np.minimum(lower, yhat),
            upper=np.maximum(upper, yhat),
        )


def _weighted_quantile(values: FloatArray, weights: FloatArray, p: float) -> FloatArray:
    """The ``p`` quantile of each column of ``values`` under ``weights`` (step function)."""
    order = np.argsort(values, axis=0)
    v = np.take_along_axis(values, order, axis=0)
    w = np.take_along_axis(np.asarray(weights, dtype=np.float64), order, axis=0)
    cum = np.cumsum(w, axis=0) / w.sum(axis=0)
    idx = (cum < p).sum(axis=0)
    idx = np.minimum(idx, v.shape[0] - 1)
    out: FloatArray = v[idx, np.arange(v.shape[1])]
    return out


class SpotPrice:
    """A spot price: a base level that follows regime shifts, spikes apart, each fitted per series.

    A spot market's price wanders around a level that moves when capacity tightens or loosens,
    and now and then jumps to two or three times that level for some days. The robust level
    (:class:`RobustLevel`) ignores the jump, so while a spike is on it forecasts the spike over
    tomorrow. Here, from the series' own history:

    - **spikes** are the steps more than ``threshold`` robust standard deviations (of the
      step-to-step changes) above the recent non-spike level, upward only; a run lasting more
      than ``max_run`` steps is not a spike but a new level;
    - the **base** is the median of the last ``window`` non-spike steps (the regime's level),
      flat. Catching up a regime shift faster (carrying the last step's deviation from the
      median, as far as past deviations lasted) forecast better point by point but made the
      daily re-plan chase noise at the cost of moves (``benchmarks/backtest_planner.py``);
    - **persistence**: when the last step is a spike, the chance it lasts ``j`` more steps is
      the empirical survival of the series' past spike runs (a geometric tail with the past
      runs' mean length beyond the longest), so the forecast decays from the spike to the base;
    - **intervals**: the mixture of the level's past errors that many steps ahead, with and
      without a spike, whose ``level`` quantiles the pipeline then calibrates.

    The pipeline fits it on the raw history (``raw_history``): the robust cleaning every other
    model gets would take out the very spikes it learns from.
    """

    name = "spot"
    raw_history = True

    def __init__(
        self,
        window: int = 14,
        threshold: float = 6.0,
        max_run: int = 14,
        reach: int = 28,
    ) -> None:
        self.window = max(1, int(window))
        self.threshold = float(threshold)
        self.max_run = max(1, int(max_run))
        self.reach = max(1, int(reach))  # steps ahead whose past errors are kept

    @property
    def min_history(self) -> int:
        """Two windows: one for the level and one to measure its errors."""
        return 2 * self.window

    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedSpot:
        """Flag spikes, measure the level's errors, learn how long spikes last."""
        require_history(y, self.min_history, unique_id)
        x = _fill(y)
        log = bool(np.min(x) > 0)
        z = np.log(x) if log else x
        diffs = np.diff(z)
        scale = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs))))
        scale = max(scale, 1e-9 * max(1.0, float(np.max(np.abs(z)))))
        spike = self._flags(z, scale)
        calm = z[~spike]
        w = min(self.window, max(1, calm.size // 2))
        # level_t: median of the w calm steps up to t; its errors k calm steps later
        levels = np.median(np.lib.stride_tricks.sliding_window_view(calm, w), axis=1)
        reach = min(self.reach, max(1, levels.size - 1))
        errors = [calm[w - 1 + k :] - levels[:-k] for k in range(1, reach + 1)]
        keep = min(e.size for e in errors)
        runs = _runs(spike)
        ongoing = int(runs[-1]) if spike[-1] else 0
        done = runs[:-1] if spike[-1] else runs
        base = float(levels[-1])
        premium = float(z[-ongoing:].mean() - base) if ongoing else 0.0
        spiked = z[spike]
        typical = float(np.median(spiked - base)) if spiked.size else 0.0
        return FittedSpot(
            level=base,
            since=ongoing,
            premium=premium,
            survival=_survival(done, ongoing, horizon=self.max_run + 1),
            spike_share=float(spike.mean()),
            spike_premium=max(typical, 0.0),
            errors=np.stack([e[-min(keep, 365) :] for e in errors]),
            log=log,
            last_ds=ds[-1],
            step_ns=step_ns,
        )

    def _flags(self, z: FloatArray, scale: float) -> npt.NDArray[np.bool_]:
        """Spike steps, in one pass: the recent level moves only on non-spike steps."""
        flags = np.zeros(z.size, dtype=bool)
        base = float(z[0])
        run = 0
        bar = self.threshold * scale
        for t in range(1, z.size):
            v = float(z[t])
            if v - base > bar:
                flags[t] = True
                run += 1
                if run > self.max_run:  # too long for a spike: the level moved
                    flags[t - run + 1 : t + 1] = False
                    base = float(np.median(z[t - run + 1 : t + 1]))
                    run = 0
                continue
            run = 0
            base += 0.5 * (v - base)
        return flags


def _runs(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Lengths of the runs of True, in order."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    out: npt.NDArray[np.int64] = (edges[1::2] - edges[::2]).astype(np.int64)
    return out


def _survival(done: npt.NDArray[np.int64], age: int, horizon: int) -> FloatArray:
    """``out[j]``: chance a spike run now ``age`` steps long lasts ``j`` more (``out[0] = 1``).

    From the empirical survival of the completed runs; where they run out (none as long), a
    geometric tail whose daily end rate is one over the past runs' mean length (one step when
    there are none yet). No spike in progress: zeros beyond ``out[0]``.
    """
    out = np.zeros(horizon + 1)
    out[0] = 1.0
    if age == 0:
        return out
    mean_len = float(done.mean()) if done.size else 1.0
    stay = 1 - 1 / max(mean_len, 1.0)
    prob = 1.0
    for j in range(1, horizon + 1):
        at_least_now = int(np.sum(done >= age + j - 1))
        at_least_next = int(np.sum(done >= age + j))
        step = at_least_next / at_least_now if at_least_now else stay
        prob *= step
        out[j] = prob
    return out
