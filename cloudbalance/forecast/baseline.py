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

__all__ = ["RobustLevel", "SeasonalNaive", "Theta"]

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
