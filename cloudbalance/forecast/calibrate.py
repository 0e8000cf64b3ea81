"""Conformal calibration of forecast intervals from backtest errors.

A model's interval is only as good as its assumptions: Prophet's assumes Gaussian noise and future
trend changes like the past ones, the baselines' assume errors grow like a random walk. On cloud
costs these are often wrong, so an "80%" interval may cover 65% of what happens. The fix is split
conformal prediction on the rolling-origin backtests: each held-out point gets a score, how many
half-widths (of its own side of the interval) it fell from the point forecast; the calibrated
interval scales each side by the conformal quantile ``q`` of those scores, so the backtests cover
``level`` by construction, widened by :func:`drift_factor` when the windows disagree (a series
that drifts is not exchangeable, and the future is one more window). ``q > 1`` widens,
``q < 1`` narrows an interval that was too cautious. We report coverage before and after;
"after" is measured leave-one-window-out (the factor is fitted on the other windows), so it is an
honest estimate, not the calibration target restated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Calibration",
    "apply_factor",
    "calibrate",
    "conformal_factor",
    "drift_factor",
    "level_floor",
]

FloatArray = npt.NDArray[np.float64]

#: Fewer backtest points than this and the interval is left as the model made it.
MIN_SCORES = 8
#: Bounds on the factor, so one freak window cannot blow an interval up or collapse it.
FACTOR_BOUNDS = (0.25, 100.0)


@dataclass(frozen=True)
class Calibration:
    """Result of calibrating one model on one series.

    Attributes:
        factor: Multiplier of each half-width (1.0 = unchanged).
        coverage: Share of backtest points inside the model's own interval.
        coverage_calibrated: Leave-one-window-out coverage of the calibrated interval.
        points: Number of backtest points used.
        floor: Smallest half-width used for scores (so zero-width intervals can still widen);
            pass it to :func:`apply_factor`.
    """

    factor: float
    coverage: float
    coverage_calibrated: float
    points: int
    floor: float = 0.0


def _scores(
    y: FloatArray, yhat: FloatArray, lower: FloatArray, upper: FloatArray, floor: float
) -> FloatArray:
    below = np.maximum(yhat - lower, floor)
    above = np.maximum(upper - yhat, floor)
    out: FloatArray = np.where(y >= yhat, (y - yhat) / above, (yhat - y) / below)
    return out


def conformal_factor(scores: FloatArray, level: float) -> float:
    """The split-conformal quantile: the ceil((n+1) level)-th smallest score, bounded."""
    s = np.sort(scores[np.isfinite(scores)])
    n = s.size
    if n < MIN_SCORES:
        return 1.0
    rank = min(n, math.ceil((n + 1) * level))
    q = float(s[rank - 1])
    return float(np.clip(q, *FACTOR_BOUNDS))


def drift_factor(scores: FloatArray, window: npt.NDArray[np.int64], level: float) -> float:
    """The conformal factor, widened until every backtest window would have been covered.

    Split conformal assumes the backtest windows and the future are exchangeable; real series
    drift (bursts, level shifts, changing seasons), so a factor fitted on some windows often
    under-covers the next one. Here each window is held out in turn and the factor fitted on
    the others; the held-out window's ``level`` quantile of scores, in units of that factor,
    says how much wider it had to be. The worst window's ratio (at least 1) multiplies the
    factor fitted on every window: when the windows agree nothing changes; when they do not,
    the interval is as wide as it took to cover a window that was not seen.
    """
    factor = conformal_factor(scores, level)
    wins = np.unique(window)
    if wins.size < 2 or scores[np.isfinite(scores)].size < MIN_SCORES:
        return factor
    ratios = [1.0]
    for w in wins:
        held = window == w
        q = conformal_factor(scores[~held], level)
        part = scores[held][np.isfinite(scores[held])]
        if part.size:
            ratios.append(float(np.quantile(part, level)) / max(q, 1e-12))
    inflation = max(ratios)
    return float(np.clip(factor * inflation, *FACTOR_BOUNDS))


def level_floor(y: FloatArray) -> float:
    """A tiny half-width relative to the series' level, for degenerate (zero-width) intervals."""
    finite = y[np.isfinite(y)]
    scale = float(np.mean(np.abs(finite))) if finite.size else 0.0
    return max(1e-9, 1e-6 * scale)


def calibrate(
    y: FloatArray,
    yhat: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    window: npt.NDArray[np.int64],
    level: float,
) -> Calibration:
    """Fit the conformal factor on all backtest points; measure coverage before and after.

    Args:
        y: Backtest actuals, concatenated over windows.
        yhat: Point forecasts for them.
        lower: Lower bounds.
        upper: Upper bounds.
        window: Window index of each point (for leave-one-window-out coverage).
        level: Nominal coverage of the interval (0.8).
    """
    ok = np.isfinite(y)
    y, yhat, lower, upper, window = y[ok], yhat[ok], lower[ok], upper[ok], window[ok]
    if y.size == 0:
        return Calibration(1.0, math.nan, math.nan, 0)
    floor = level_floor(y)
    scores = _scores(y, yhat, lower, upper, floor)
    coverage = float(np.mean((y >= lower) & (y <= upper)))
    factor = drift_factor(scores, window, level)
    wins = np.unique(window)
    if wins.size >= 2:
        hits = np.zeros(y.size, dtype=bool)
        for w in wins:
            held = window == w
            q = drift_factor(scores[~held], window[~held], level) if (~held).sum() else 1.0
            hits[held] = scores[held] <= q
        cal_cov = float(hits.mean())
    else:
        cal_cov = float(np.mean(scores <= factor))
    return Calibration(factor, coverage, cal_cov, int(y.size), floor)


def apply_factor(
    yhat: FloatArray, lower: FloatArray, upper: FloatArray, factor: float, floor: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Scale each side of an interval around the point forecast by ``factor``."""
    lo = yhat - factor * np.maximum(yhat - lower, floor)
    hi = yhat + factor * np.maximum(upper - yhat, floor)
    return lo, hi
