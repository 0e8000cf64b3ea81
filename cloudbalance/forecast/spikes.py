"""Spike warnings: forecast periods expected to exceed a series' normal level, and how surely.

A spike is judged per forecast period against a threshold, one of:

- ``relative`` (default): ``threshold = baseline * (1 + margin)``, the baseline being the median
  of the series' last four seasons (28 days of daily data, 4 days of hourly data);
- ``absolute``: a fixed value per series (or one for all);
- ``budget``: a spend limit per period, per series (or one for all).

The probability that a period exceeds the threshold comes from the errors the series' own model
made on its backtests (:func:`exceedance`): each held-out error, in units of the normal level at
its origin, is added to the forecast, and ``P`` is the share of those outcomes above the threshold.
Errors are measured on the raw series, so the bursts a robust fit smooths away, and the skew of
counts and costs, are in the distribution; a symmetric interval, widened until every backtest
window was covered, would call nearly every period near the threshold a coin flip. A series with
too few backtests falls back to the forecast's interval read as a normal distribution
(:func:`spike_scores`).

A period is a spike when ``P >= cut``. The cut is the rule's ``probability`` when one is given;
by default it is chosen per series (:func:`f1_cut`): warning pays off when it is likely enough
relative to how well the series can be warned at all. For calibrated probabilities the cut that
maximises F1 is half the best F1 reachable, so a fixed 0.5 is right only for a series whose
peaks are known almost surely, and misses most spikes of a noisy one. The cut maximises the F1
the series' backtest probabilities expect (each window scored with the errors of the others, so
no window judges itself), and is never below :data:`MIN_CUT`. Consecutive spike periods of a
series form one warning saying when (start, end, peak), how big (expected peak vs the normal
level and their ratio) and how sure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from cloudbalance.exceptions import ForecastError
from cloudbalance.schema import SPIKE_COLUMNS

__all__ = [
    "SPIKE_COLUMNS",
    "SpikeRule",
    "SpikeWarning",
    "exceedance",
    "f1_cut",
    "spike_scores",
    "spike_warnings",
    "warnings_frame",
]

Basis = Literal["relative", "absolute", "budget"]

#: The cut when neither the rule nor the backtests say otherwise (no backtests).
DEFAULT_PROBABILITY = 0.5
#: The lowest cut :func:`f1_cut` chooses: a period less likely than this is never warned.
MIN_CUT = 0.25
#: Cuts :func:`f1_cut` chooses from.
CUTS: tuple[float, ...] = tuple(round(MIN_CUT + 0.05 * i, 2) for i in range(14))


@dataclass(frozen=True)
class SpikeRule:
    """How to decide that a forecast period is a spike.

    Attributes:
        basis: ``relative``, ``absolute`` or ``budget``.
        margin: For ``relative``: how far above the baseline counts (0.25 = 25% above).
        value: For ``absolute``/``budget``: the threshold, one number or one per unique_id.
        probability: How sure we must be (P(y > threshold)) to warn; ``None`` (default): the
            cut is chosen per series from its backtests (see :func:`f1_cut`).
    """

    basis: Basis = "relative"
    margin: float = 0.25
    value: float | Mapping[str, float] | None = None
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.basis not in ("relative", "absolute", "budget"):
            raise ForecastError(
                f"spike basis must be relative, absolute or budget, got {self.basis!r}"
            )
        if self.basis != "relative" and self.value is None:
            raise ForecastError(f"a {self.basis} spike rule needs a value (threshold or budget)")
        if self.probability is not None and not 0 < self.probability < 1:
            raise ForecastError(f"spike probability must be in (0, 1), got {self.probability}")

    def threshold(self, unique_id: str, normal_level: float) -> float:
        """The level above which a period of ``unique_id`` is a spike."""
        if self.basis == "relative":
            return normal_level + abs(normal_level) * self.margin
        value = self.value
        if isinstance(value, Mapping):
            if unique_id not in value:
                return math.inf
            return float(value[unique_id])
        return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SpikeWarning:
    """One expected spike: when, how big, how sure."""

    unique_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    peak_ds: pd.Timestamp
    expected: float
    normal_level: float
    threshold: float
    ratio: float
    probability: float
    periods: int
    basis: str

    def __str__(self) -> str:
        return (
            f"{self.unique_id}: expected {self.expected:,.2f} on {self.peak_ds} "
            f"({self.ratio:.2f}x the normal {self.normal_level:,.2f}), "
            f"{self.periods} period(s) from {self.start} to {self.end}, "
            f"probability {self.probability:.0%}"
        )


def spike_scores(
    yhat: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    threshold: float,
    level: float,
) -> npt.NDArray[np.float64]:
    """P(y > threshold) per period, from the interval read as a normal distribution."""
    if not math.isfinite(threshold):
        return np.zeros_like(yhat)
    z = float(special.ndtri(0.5 + level / 2))
    sd = np.maximum((upper - lower) / (2 * z), 1e-12 * (1 + np.abs(yhat)))
    out: npt.NDArray[np.float64] = special.ndtr((yhat - threshold) / sd)
    return out


def exceedance(
    yhat: npt.NDArray[np.float64], errors: npt.NDArray[np.float64], scale: float, threshold: float
) -> npt.NDArray[np.float64]:
    """P(y > threshold) per period: the share of past errors that would have taken it above.

    Args:
        yhat: Point forecasts.
        errors: Backtest errors ``y - yhat`` in units of the normal level at their origin
            (NaN: skipped).
        scale: The normal level now (its absolute value; 1 when it is 0), the errors' unit.
        threshold: The spike threshold.
    """
    e = errors[np.isfinite(errors)]
    if not math.isfinite(threshold) or e.size == 0:
        return np.zeros_like(yhat)
    # the share of errors above (threshold - yhat) / scale, by one sorted search per period
    need = (threshold - yhat) / scale
    above = e.size - np.searchsorted(np.sort(e), need, side="right")
    out: npt.NDArray[np.float64] = above / e.size
    return out


def f1_cut(scores: npt.NDArray[np.float64]) -> float:
    """The cut of :data:`CUTS` whose warnings the probabilities ``scores`` expect the best F1 of.

    With calibrated probabilities ``p``, warning the periods ``p >= c`` expects
    ``2 sum(p | p >= c) / (count(p >= c) + sum(p))`` as F1 (expected true positives over the
    expected mean of warnings and spikes); no labels are needed, so a few backtest windows
    are enough. No probability mass (nothing ever came near the threshold) keeps the default.
    """
    s = scores[np.isfinite(scores)]
    if s.size == 0 or float(s.sum()) <= 0:
        return DEFAULT_PROBABILITY
    cuts = np.asarray(CUTS)
    warned = s[None, :] >= cuts[:, None]
    expected = 2 * (warned * s[None, :]).sum(axis=1) / (warned.sum(axis=1) + s.sum())
    return float(cuts[int(np.argmax(expected))])


def spike_warnings(
    forecast: pd.DataFrame, levels: Mapping[str, float], rule: SpikeRule
) -> list[SpikeWarning]:
    """Group consecutive spike periods of a forecast frame into warnings.

    Args:
        forecast: A forecast frame with ``spike`` and ``spike_score`` filled.
        levels: Normal level per unique_id (the relative baseline).
        rule: The rule that produced the ``spike`` column.
    """
    out: list[SpikeWarning] = []
    spiking = forecast["spike"].fillna(False).astype(bool).to_numpy()
    for uid in sorted(set(forecast["unique_id"].to_numpy()[spiking].tolist())):
        full = forecast[forecast["unique_id"] == uid]
        is_spike = full["spike"].fillna(False).astype(bool).to_numpy()
        yhat = full["yhat"].to_numpy(dtype=np.float64)
        scores = full["spike_score"].to_numpy(dtype=np.float64)
        ds = full["ds"].to_numpy(dtype="datetime64[ns]")
        runs = np.flatnonzero(np.diff(np.concatenate([[0], is_spike.astype(int), [0]])))
        normal = float(levels.get(str(uid), math.nan))
        threshold = rule.threshold(str(uid), normal)
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            peak = a + int(yhat[a:b].argmax())
            expected = float(yhat[peak])
            ref = normal if rule.basis == "relative" else threshold
            ratio = expected / ref if ref and math.isfinite(ref) else math.nan
            out.append(
                SpikeWarning(
                    unique_id=str(uid),
                    start=pd.Timestamp(ds[a]),
                    end=pd.Timestamp(ds[b - 1]),
                    peak_ds=pd.Timestamp(ds[peak]),
                    expected=expected,
                    normal_level=normal,
                    threshold=threshold,
                    ratio=ratio,
                    probability=float(scores[a:b].max()),
                    periods=int(b - a),
                    basis=rule.basis,
                )
            )
    return out


def warnings_frame(warnings: list[SpikeWarning]) -> pd.DataFrame:
    """Spike warnings as a frame with :data:`SPIKE_COLUMNS`."""
    return pd.DataFrame(
        [[getattr(w, c) for c in SPIKE_COLUMNS] for w in warnings], columns=list(SPIKE_COLUMNS)
    )
