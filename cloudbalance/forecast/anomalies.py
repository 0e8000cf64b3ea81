"""Anomaly detection on history: incidents people would keep an alert on, ranked by money.

A detector that flags every noisy point gets muted on day one, so this one reports *incidents*
and only the ones that stand out against what the series usually does:

1. **Expected value.** A robust seasonal baseline: a centred rolling median level (two seasons
   wide, so a level shift moves the baseline within a season instead of flagging everything
   after it) plus the median profile per season slot (hour of day for sub-daily data, with
   separate weekday and weekend profiles once three weeks are observed; day of week for daily
   data). Daily data also learns **calendar peaks**: when the last days of the
   month (or the first) are high in most months of the history, that bump is part of the
   expectation, so a month-end batch that recurs every month is expected, not an anomaly.
   Non-negative series are scored on their square root, which steadies the noise of counts and
   costs whose spread grows with their level (heavy tails).
2. **Score.** The residual in robust standard deviations, using a *local* spread (rolling MAD
   over a week of seasons) floored by the series' overall spread, so a noisy week does not
   look like a string of anomalies and a calm one does not hide a real one. Sparse series
   (mostly zeros, MAD 0) fall back to quantile spreads instead of a near-zero denominator.
3. **Incidents.** A point whose ``|score|`` exceeds ``threshold`` triggers an incident; the
   incident spans the run of neighbouring points beyond ``low`` (the same sign) around it.
   Incidents that start within ``cooldown`` periods of the previous one merge into it: one
   incident, one alert. The alert is the incident's *first* run (its onset, when someone can
   still act); runs merged later belong to the incident (its id, its impact) but are not
   alerted again. Nothing is alerted in the first season of history (the warm-up: a day of
   sub-daily data, a week of daily data), before the series has shown what it usually does.
   At most :data:`ALERT_BUDGET` incidents per week of history survive, those with the largest
   ``|impact|`` (the order they are reported in): a series that bumps more often than that
   has made those bumps its normal behaviour, and one noisy series cannot flood the alerts.
4. **Impact.** Each incident carries ``impact = sum(y - expected)`` over its points, in the
   series' unit (money for cost series), and incidents are ranked by ``|impact|``.

Medians everywhere keep the anomalies themselves from bending the expectation they are judged
against, so one huge spike, a credit (negative value) or a zero day stand out instead of hiding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from cloudbalance.forecast.prepare import Prepared

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_LOW",
    "DEFAULT_THRESHOLD",
    "Detection",
    "FitHistory",
    "Incident",
    "anomaly_id",
    "calendar_values",
    "detect",
    "fit_history",
]

FloatArray = npt.NDArray[np.float64]

#: ``|score|`` that triggers an incident (robust standard deviations).
DEFAULT_THRESHOLD = 6.0
#: ``|score|`` beyond which forecasters' history treats a run as an outlier (:func:`fit_history`).
OUTLIER_THRESHOLD = 6.0
#: ``|score|`` that extends a triggered incident to its neighbours.
DEFAULT_LOW = 4.0
#: Incidents starting within this many seasons of the previous one's end are the same incident.
DEFAULT_COOLDOWN = 0.25
#: Alert budget: at most this many incidents per series per week of history on average (the most
#: severe ones). A detector that alerts more often than that gets muted; when a series has more
#: incidents than its budget, the rest are its usual noise, not news.
ALERT_BUDGET = 1.0
#: Share of months whose calendar slot must be high for the bump to be learned as expected.
CALENDAR_SHARE = 0.6
#: Sub-daily data with this many observed weeks gets separate weekday and weekend profiles.
WEEKLY_MIN_WEEKS = 3
_MAD = 1.4826


@dataclass(frozen=True)
class Incident:
    """One anomaly: a run of unusual points of one series, reported as one alert.

    Attributes:
        start: First grid index of the incident.
        end: Last grid index (inclusive).
        peak: Grid index of the largest ``|score|``.
        severity: Sum of ``|score|`` over the incident's points.
        impact: ``sum(y - expected)`` over the points (the series' unit; money for costs).
        alert_end: Last grid index of the incident's first run of unusual points: the alert.
            Runs merged into the incident by the cool-down belong to it (its id, its impact)
            but raise no new alert; defaults to ``end``.
    """

    start: int
    end: int
    peak: int
    severity: float
    impact: float
    alert_end: int = -1

    def __post_init__(self) -> None:
        if self.alert_end < 0:
            object.__setattr__(self, "alert_end", self.end)


@dataclass(frozen=True)
class Detection:
    """Per-point expectation and score of one series, and its incidents."""

    expected: FloatArray
    score: FloatArray
    incidents: tuple[Incident, ...]


def anomaly_id(unique_id: str, start: np.datetime64, step_ns: int) -> str:
    """A stable, readable id for an incident: ``<unique_id>@<start>``.

    The id carries the series and start time, so feedback on an anomaly (``anomalies feedback
    <id>``) needs nothing but the id; daily and coarser data print the date only.
    """
    ts = pd.Timestamp(start)
    text = ts.strftime("%Y-%m-%d") if step_ns >= 86_400 * 10**9 else ts.strftime("%Y-%m-%dT%H:%M")
    return f"{unique_id}@{text}"


def _rolling_median(x: FloatArray, window: int) -> FloatArray:
    out: FloatArray = (
        pd.Series(x).rolling(window, center=True, min_periods=1).median().to_numpy(np.float64)
    )
    return out


def _spread(resid: FloatArray) -> float:
    """The series' robust spread: MAD, else quantile ranges (sparse data), else mean deviation."""
    finite = resid[np.isfinite(resid)]
    if finite.size == 0:
        return 0.0
    centre = float(np.median(finite))
    mad = _MAD * float(np.median(np.abs(finite - centre)))
    if mad > 0:
        return mad
    q01, q10, q90, q99 = np.quantile(finite, [0.01, 0.1, 0.9, 0.99])
    for candidate in ((q90 - q10) / 2.563, (q99 - q01) / 4.653):
        if candidate > 0:
            return float(candidate)
    return float(np.mean(np.abs(finite - centre))) * 1.253


def _slots(ds: npt.NDArray[np.datetime64]) -> dict[str, npt.NDArray[np.bool_]]:
    days = pd.DatetimeIndex(ds)
    to_end = (days.days_in_month - days.day).to_numpy()
    slots = {f"end-{k}": to_end == k for k in range(3)}
    slots.update({f"start-{k}": days.day.to_numpy() == k for k in (1, 2)})
    return slots


def _calendar_profile(
    ds: npt.NDArray[np.datetime64], resid: FloatArray, spread: float
) -> dict[str, float]:
    """Recurring month-start/month-end bumps of daily data: the offset per calendar slot.

    A slot (last, second-last, third-last day of the month; first, second day) is learned when
    its residual is beyond two spreads in the same direction in at least :data:`CALENDAR_SHARE`
    of the months that have it, and in at least two months. The offset is the slot's median.
    """
    profile: dict[str, float] = {}
    if spread <= 0:
        return profile
    days = pd.DatetimeIndex(ds)
    month = (days.year * 12 + days.month).to_numpy()
    for name, mask in _slots(ds).items():
        use = mask & np.isfinite(resid)
        if np.unique(month[use]).size < 2:
            continue
        vals = resid[use]
        med = float(np.median(vals))
        same = np.sign(vals) == np.sign(med)
        if abs(med) > 2 * spread and np.mean(same & (np.abs(vals) > 2 * spread)) >= CALENDAR_SHARE:
            profile[name] = med
    return profile


def calendar_values(ds: npt.NDArray[np.datetime64], profile: dict[str, float]) -> FloatArray:
    """The calendar offsets of ``profile`` on the days ``ds`` (zero outside learned slots)."""
    out: FloatArray = np.zeros(ds.size)
    if profile:
        for name, mask in _slots(ds).items():
            out[mask] += profile.get(name, 0.0)
    return out


def _baseline(
    prep: Prepared, x: FloatArray, *, weekly: bool = False
) -> tuple[FloatArray, dict[str, float]]:
    """Level + seasonal profile (+ calendar peaks for daily data) of ``x``, and the calendar.

    The level is a centred rolling median two seasons wide. The profile is the median per slot
    of the season (hour of day, day of week); with ``weekly``, sub-daily data with at least
    :data:`WEEKLY_MIN_WEEKS` observed weeks gets one hour-of-day profile for weekdays and one
    for weekends: office-hours demand is quiet on Saturdays, and a single daily profile reports
    every weekend as an incident. (A profile per hour of the *week* has a handful of samples
    per slot and its noise becomes false alarms.) The calendar profile (offsets per
    month-start/month-end slot) is empty unless the data is daily, long enough (45 observed
    days) and the bumps recur.
    """
    n = x.size
    season = prep.season if prep.observed >= 3 * prep.season else 1
    window = max(2 * season + 1, 7)
    level = _rolling_median(x, window)
    seasonal: FloatArray = np.zeros(n)
    period = season
    sub_daily = season > 1 and prep.step_ns < 86_400 * 10**9
    phase = np.arange(n) % max(period, 1)
    if weekly and sub_daily and prep.observed >= WEEKLY_MIN_WEEKS * 7 * season:
        period = 2 * season
        weekend = pd.DatetimeIndex(prep.ds).day_of_week.to_numpy() >= 5
        phase = phase + season * weekend
    if period > 1:
        detrended = x - level
        # the edges' half-windows see a lopsided season: keep them out of the profile
        half = window // 2
        interior = np.zeros(n, dtype=bool)
        interior[half : n - half] = True
        use = interior if np.isfinite(detrended[interior]).sum() >= period else np.ones(n, bool)
        prof = (
            pd.Series(detrended[use])
            .groupby(phase[use])
            .median()
            .reindex(range(period))
            .fillna(0.0)
            .to_numpy()
        )
        seasonal = prof[phase].astype(np.float64)
        level = _rolling_median(x - seasonal, window)
    profile: dict[str, float] = {}
    if prep.step_ns == 86_400 * 10**9 and prep.observed >= 45:
        resid = x - level - seasonal
        profile = _calendar_profile(prep.ds, resid, _spread(resid))
        if profile:
            calendar = calendar_values(prep.ds, profile)
            # the level must not absorb half of the recurring bump: re-estimate without it
            level = _rolling_median(x - seasonal - calendar, window)
            seasonal = seasonal + calendar
    out: FloatArray = level + seasonal
    return out, profile


def _scores(prep: Prepared, x: FloatArray, expected: FloatArray) -> FloatArray:
    resid = x - expected
    spread = _spread(resid)
    if spread <= 0:
        spread = 1e-9 + 1e-6 * float(np.nanmean(np.abs(x)))
    season = prep.season if prep.observed >= 3 * prep.season else 1
    centre = float(np.nanmedian(resid))
    local = _MAD * _rolling_median(np.abs(resid - centre), max(7 * season, 29))
    local = np.where(np.isfinite(local), np.maximum(local, spread), spread)
    score: FloatArray = (resid - centre) / local
    return np.where(np.isfinite(score), score, 0.0)


def _incidents(
    score: FloatArray,
    y: FloatArray,
    expected: FloatArray,
    *,
    threshold: float,
    low: float,
    cooldown: int,
    budget: bool = True,
    weeks: float = 0.0,
    warm_up: int = 0,
) -> list[Incident]:
    n = score.size
    triggers = np.flatnonzero(np.abs(score) > threshold)
    spans: list[tuple[int, int, int]] = []  # start, end, end of the first run (the alert)
    for i in triggers:
        if spans and i <= spans[-1][1]:
            continue
        sign = np.sign(score[i])
        a = int(i)
        while a > 0 and score[a - 1] * sign > low:
            a -= 1
        b = int(i)
        while b < n - 1 and score[b + 1] * sign > low:
            b += 1
        if spans and a - spans[-1][1] <= cooldown:
            # within the cool-down: the same incident, already alerted
            spans[-1] = (spans[-1][0], b, spans[-1][2])
        else:
            spans.append((a, b, b))
    out = []
    for a, b, alert_end in spans:
        if a < warm_up:
            continue
        part = np.abs(score[a : b + 1])
        diff = (y - expected)[a : b + 1]
        out.append(
            Incident(
                start=a,
                end=b,
                peak=a + int(np.argmax(part)),
                severity=float(part[part > low].sum() if (part > low).any() else part.max()),
                impact=float(np.nansum(diff)),
                alert_end=alert_end,
            )
        )
    if budget and weeks > 0:
        allowed = max(1, math.ceil(ALERT_BUDGET * weeks))
        if len(out) > allowed:
            # the ones that cost most: the budget keeps what the ranking would show first
            keep = sorted(out, key=lambda inc: -abs(inc.impact))[:allowed]
            out = sorted(keep, key=lambda inc: inc.start)
    return out


def detect(
    prep: Prepared,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    low: float = DEFAULT_LOW,
    cooldown: float = DEFAULT_COOLDOWN,
) -> Detection:
    """Expected value, robust score and incidents of one series (NaN at gaps).

    Args:
        prep: The series on its regular grid.
        threshold: ``|score|`` that triggers an incident.
        low: ``|score|`` that extends an incident to neighbouring points (at most ``threshold``).
        cooldown: Seasons after an incident during which a new one merges into it.
    """
    y = prep.y
    low = min(low, threshold)
    finite = y[np.isfinite(y)]
    # counts and costs: the square root steadies a spread that grows with the level
    sqrt = finite.size > 0 and float(finite.min()) >= 0
    x = np.sqrt(y) if sqrt else y
    fitted, _ = _baseline(prep, x, weekly=True)
    score = _scores(prep, x, fitted)
    expected: FloatArray = np.square(np.maximum(fitted, 0.0)) if sqrt else fitted
    season = prep.season if prep.observed >= 3 * prep.season else 1
    incidents = _incidents(
        score,
        y,
        expected,
        threshold=threshold,
        low=low,
        cooldown=round(cooldown * season),
        weeks=score.size * prep.step_ns / (7 * 86_400 * 10**9),
        warm_up=season if season > 1 else 0,
    )
    return Detection(expected=expected, score=score, incidents=tuple(incidents))


@dataclass(frozen=True)
class FitHistory:
    """What forecasters are fitted on, and the calendar effect to add back to their forecasts.

    Attributes:
        y: The history with outlying incidents replaced by their expected values (when robust)
            and the learned calendar offsets taken out.
        calendar: Offsets per month-start/month-end slot, in the series' unit (see
            :func:`calendar_values`); empty when there is no recurring calendar peak.
    """

    y: FloatArray
    calendar: dict[str, float]


def fit_history(
    prep: Prepared, *, robust: bool = True, threshold: float = OUTLIER_THRESHOLD
) -> FitHistory:
    """The history forecasters should fit on: outliers out, calendar peaks learned apart.

    A burst, an outage or a one-off bill bends a model fitted on it (a level pulled up, a
    seasonal slot learned from one freak day, a naive forecast that repeats yesterday's
    incident); with ``robust`` they are replaced by their expected values. Every incident counts
    here, also recurring bumps the detector would not alert on. Recurring month-end/month-start
    peaks of daily data (a monthly batch, billing) are not outliers but no model's seasonality
    has them (weeks and years do not line up with months): their offsets are taken out here and
    added back to the forecast by the caller (:func:`calendar_values` on the future days).
    Errors are still measured on the raw series.
    """
    y = prep.y
    if prep.observed < 3 * max(prep.season, 7):
        return FitHistory(y, {})
    out = y.copy()
    if robust:
        finite = y[np.isfinite(y)]
        sqrt = float(finite.min()) >= 0
        x = np.sqrt(y) if sqrt else y
        fitted, _ = _baseline(prep, x)
        score = _scores(prep, x, fitted)
        expected = np.square(np.maximum(fitted, 0.0)) if sqrt else fitted
        for inc in _incidents(
            score, y, expected, threshold=threshold, low=DEFAULT_LOW, cooldown=0, budget=False
        ):
            span = slice(inc.start, inc.end + 1)
            out[span] = np.where(np.isfinite(y[span]), expected[span], np.nan)
    _, calendar = _baseline(prep, out)
    if calendar:
        out = out - calendar_values(prep.ds, calendar)
    return FitHistory(out, calendar)
