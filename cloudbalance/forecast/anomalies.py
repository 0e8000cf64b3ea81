"""Anomaly detection on history: incidents people would keep an alert on, ranked by money.

A detector that flags every noisy point gets muted on day one, so this one reports *incidents*
and only the ones that stand out against what the series usually does:

1. **Expected value.** A robust seasonal baseline: a centred rolling median level (two seasons
   wide, so a level shift moves the baseline within a season instead of flagging everything
   after it) plus the median profile per season slot (hour of day for sub-daily data, with
   separate weekday and weekend profiles once three weeks are observed; day of week for daily
   data). Daily data also learns **calendar peaks**: when the last days of the
   month (or the first, or any other day of the month, or a day of one month in three) are
   high or low in most months of the history, that bump is part of the expectation, so a
   month-end batch or a quarterly credit that recurs is expected, not an anomaly.
   Non-negative series are scored on their square root, which steadies the noise of counts and
   costs whose spread grows with their level (heavy tails).
2. **Score.** The residual in robust standard deviations, using a *local* spread (rolling MAD
   over a week of seasons) floored by the series' overall spread, so a noisy week does not
   look like a string of anomalies and a calm one does not hide a real one. Sparse series
   (mostly zeros, MAD 0) fall back to quantile spreads instead of a near-zero denominator.
3. **Calibrated bars.** One constant bar does not fit every series: heavy-tailed noise crosses
   6 robust standard deviations every few days, while quiet (near-Gaussian) noise almost never
   gets past 4, so a real incident of score 5 hides below a 6. Each series gets its own bar from
   its own scores (:func:`calibrated_threshold`, after the warm-up): a peaks-over-threshold fit of
   the tail of ``|score|`` (an exponential tail above the 90% quantile, scaled by the median
   excess so the incidents themselves do not inflate it) gives the level its noise would
   reach about once per :data:`CALIBRATION_POINTS` points (or once a week, if that is rarer).
   The bar is that level, never below ``low`` and never above ``threshold``: heavy-tailed series
   keep ``threshold`` (and the alert budget below), quiet ones get a lower bar.
4. **Sustained shifts.** A level shift, a slow surge or a drop that lasts hours rarely has one
   point beyond the bar: it is a run of moderate scores. The *shift score*
   (:func:`shift_scores`) is the rolling mean of the point scores, clipped at ``low`` so a lone
   spike weighs no more than a moderate point, over an hour of sub-daily data (at least
   :data:`SHIFT_MIN_POINTS` points: six hours of hourly data, six days of daily data),
   calibrated per series by the median and robust spread of that mean (it is autocorrelated
   and its spread differs per series). A shift score beyond :data:`SHIFT_THRESHOLD`, where the
   points are on average at least :data:`SHIFT_MIN_LEVEL` robust standard deviations off,
   triggers a *shift* incident spanning the run of the shift score beyond ``low`` in the same
   direction.
5. **Incidents.** A point whose ``|score|`` exceeds its series' bar triggers a *spike*
   incident; the incident spans the run of neighbouring points beyond ``low`` (the same sign)
   around it.
   Incidents that start within ``cooldown`` periods of the previous one merge into it: one
   incident, one alert. The alert is the incident's *first* run (its onset, when someone can
   still act), and always its trigger point (a shift's points may each be below ``low``); runs
   merged later belong to the incident (its id, its impact) but are not
   alerted again, unless the incident **escalates**: a run whose peak reaches
   :data:`ESCALATION` times the incident's peak so far (a slowdown that becomes an outage) is
   news, and starts an incident of its own. Nothing is alerted in the first season of history
   (the warm-up: a day of sub-daily data, a week of daily data), before the series has shown
   what it usually does.
   About :data:`ALERT_BUDGET` spike incidents per week of history alert freely, and
   :data:`SHIFT_BUDGET` shift incidents (about one a month), those with the largest
   ``|impact|`` (the order they are reported in): a series that bumps more often than that
   has made those bumps its normal behaviour, and one noisy series cannot flood the alerts.
   Each kind has its own budget, so a series' daily bursts never crowd out the one day its
   level moved, nor the reverse. A week is 2,016 points of 5-minute data but 168 of hourly
   and 7 of daily data, and alerts are read (and judged) per point as much as per week: only
   the rarer of the weekly budget and the same number per :data:`CALIBRATION_POINTS`
   observed points (gaps are not points) is free. Past the free alerts the bar **escalates**:
   each further incident must reach :data:`ESCALATION` times further beyond its bar than the
   one before (2x, then 4x...), so a series that alerts often must be much more extreme to
   alert again, whatever its sampling interval, while a few far-out incidents (a runaway
   job, a credit and a lost day in a quarter of daily costs) are all still told: the
   escalating bar, not a count per week, bounds them (each doubling of the bar admits one
   more, so a series gets a few extra alerts at most, however long its history).
6. **Impact.** Each incident carries ``impact = sum(y - expected)`` over its points, in the
   series' unit (money for cost series), and incidents are ranked by ``|impact|``.

Medians everywhere keep the anomalies themselves from bending the expectation they are judged
against, so one huge spike, a credit (negative value) or a zero day stand out instead of hiding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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
    "calibrated_threshold",
    "detect",
    "fit_history",
    "shift_scores",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: ``|score|`` that triggers an incident (robust standard deviations).
DEFAULT_THRESHOLD = 6.0
#: ``|score|`` beyond which forecasters' history treats a run as an outlier (:func:`fit_history`).
OUTLIER_THRESHOLD = 6.0
#: ``|score|`` that extends a triggered incident to its neighbours.
DEFAULT_LOW = 4.0
#: Incidents starting within this many seasons of the previous one's end are the same incident.
DEFAULT_COOLDOWN = 0.25
#: Alert budget: this many incidents per series per week of history on average (the costliest
#: ones) alert freely. A detector that alerts more often than that gets muted; when a series has
#: more incidents than its budget, the rest are its usual noise, not news, unless far more
#: extreme (:data:`ESCALATION`). Only the rarer of this and the same number per
#: :data:`CALIBRATION_POINTS` points is free.
ALERT_BUDGET = 1.0
#: Calibration: a series' bar is the ``|score|`` its noise reaches about once per this many
#: points (or once per week of seasons, if that is rarer), from a fit of its tail.
CALIBRATION_POINTS = 1000
#: Escalating bar: past a series' free alerts (its budget counted in the rarer of weeks and
#: :data:`CALIBRATION_POINTS` points), each further incident must be this many times further
#: beyond its bar than the one before it (2x, 4x, 8x the bar...), with no cap: a far-out
#: incident is news however many came before it.
#: A run within an incident's cool-down whose peak is this many times the incident's starts an
#: incident of its own (the incident escalated: :func:`_escalates`).
#: A week is 168 points of hourly data and 7 of daily data: a weekly budget alone lets those
#: series alert twelve (hourly) to 288 (daily) times as often per point as 5-minute data, and
#: each alert is judged per point by whoever reads them.
ESCALATION = 2.0
#: Calibrated shift score (:func:`shift_scores`) that triggers a sustained-shift incident.
SHIFT_THRESHOLD = 4.5
#: A shift incident needs its points to be at least this many robust standard deviations off on
#: average: a calm series' calibrated shift score alone would flag wobbles nobody would notice
#: (an hour of Gaussian noise averages one standard deviation off every few weeks).
SHIFT_MIN_LEVEL = 2.0
#: Fewest points in the shift score's window (an hour of sub-daily data when that is more).
SHIFT_MIN_POINTS = 6
#: Shift budget: at most this many shift incidents per series per week of history on average.
SHIFT_BUDGET = 0.25
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
        kind: ``spike`` (a point beyond the series' bar) or ``shift`` (a sustained run of
            moderate scores, see :func:`shift_scores`); each kind has its own alert budget.
        trigger: Grid index where the incident was detected; always one of its alerted points,
            also when a shift's points are each below ``low``. Defaults to ``peak``.
    """

    start: int
    end: int
    peak: int
    severity: float
    impact: float
    alert_end: int = -1
    kind: Literal["spike", "shift"] = "spike"
    trigger: int = -1

    def __post_init__(self) -> None:
        if self.alert_end < 0:
            object.__setattr__(self, "alert_end", self.end)
        if self.trigger < 0:
            object.__setattr__(self, "trigger", self.peak)


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


#: Fewest months (or quarters) a mid-month or quarterly slot must be seen in to be learned: it is
#: one of about 120 such slots, so two or three chance coincidences must not make a pattern.
CALENDAR_MIN_REPEATS = 4


def _slot_stages(
    ds: npt.NDArray[np.datetime64],
) -> list[tuple[int, dict[str, npt.NDArray[np.bool_]]]]:
    """Calendar slots of daily data, in the order they are learned, with their fewest repeats.

    1. The last three days and the first two of every month (batches, billing runs), from two
       months on.
    2. Any other day of every month (a payroll run on the 15th).
    3. A day of one month in three (quarterly credits, a quarter-end close), learned on what
       the monthly slots leave, so a monthly bump is not counted again every quarter.
    """
    days = pd.DatetimeIndex(ds)
    dom = days.day.to_numpy()
    to_end = (days.days_in_month - days.day).to_numpy()
    edges = {f"end-{k}": to_end == k for k in range(3)}
    edges.update({f"start-{k}": dom == k for k in (1, 2)})
    monthly = {f"day-{k}": dom == k for k in range(3, 29)}
    phase = (days.month.to_numpy() - 1) % 3
    quarterly: dict[str, npt.NDArray[np.bool_]] = {}
    for r in range(3):
        month = phase == r
        quarterly.update({f"quarter-{r}-day-{k}": month & (dom == k) for k in range(1, 29)})
        quarterly.update({f"quarter-{r}-end-{k}": month & (to_end == k) for k in range(3)})
    return [(2, edges), (CALENDAR_MIN_REPEATS, monthly), (CALENDAR_MIN_REPEATS, quarterly)]


def _slots(ds: npt.NDArray[np.datetime64]) -> dict[str, npt.NDArray[np.bool_]]:
    return {name: mask for _, stage in _slot_stages(ds) for name, mask in stage.items()}


def _calendar_profile(
    ds: npt.NDArray[np.datetime64], resid: FloatArray, spread: float
) -> dict[str, float]:
    """Recurring calendar bumps of daily data: the offset per calendar slot.

    A slot (see :func:`_slot_stages`) is learned when its residual is beyond two spreads in
    the same direction in at least :data:`CALENDAR_SHARE` of the months (or quarters) that
    have it, and in at least the stage's fewest repeats. The offset is the slot's median; each
    stage is learned on the residual the earlier ones leave.
    """
    profile: dict[str, float] = {}
    if spread <= 0:
        return profile
    days = pd.DatetimeIndex(ds)
    month = (days.year * 12 + days.month).to_numpy()
    left = resid.copy()
    for repeats, stage in _slot_stages(ds):
        learned: dict[str, float] = {}
        for name, mask in stage.items():
            use = mask & np.isfinite(left)
            if np.unique(month[use]).size < repeats:
                continue
            vals = left[use]
            med = float(np.median(vals))
            same = np.sign(vals) == np.sign(med)
            beyond = np.mean(same & (np.abs(vals) > 2 * spread))
            if abs(med) > 2 * spread and beyond >= CALENDAR_SHARE:
                learned[name] = med
        for name, offset in learned.items():
            left[stage[name]] -= offset
        profile.update(learned)
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
    per slot and its noise becomes false alarms.) The calendar profile (offsets per day of
    the month, monthly or quarterly) is empty unless the data is daily, long enough (45
    observed days) and the bumps recur.
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


def calibrated_threshold(
    score: FloatArray,
    observed: BoolArray,
    *,
    season: int,
    threshold: float,
    low: float,
    warm_up: int = 0,
) -> float:
    """The series' own trigger bar, within ``[low, threshold]``: where its noise rarely reaches.

    "Rarely" is about once per :data:`CALIBRATION_POINTS` points, or once a week of seasons
    when that is rarer (a week of 5-minute data is 2,016 points).

    A peaks-over-threshold fit: above ``u``, the 90% quantile of ``|score|`` (after the
    warm-up), the tail is taken as exponential, ``P(|score| > u + x) = 0.1 * exp(-x / scale)``,
    with the scale from the *median* excess over ``u`` (``median / ln 2``), so the incidents in
    the history do not raise the bar that should catch them. An exponential tail is heavier than a
    Gaussian one, so the bar errs high on quiet series; heavy-tailed series have a large scale
    and keep ``threshold``. With too few points to fit (under 100) the bar is ``threshold``.

    Args:
        score: Point scores (robust standard deviations).
        observed: Where the series has a value (gaps are left out of the fit).
        season: Steps per season (a week of seasons is the once-a-week horizon).
        threshold: The highest bar (heavy-tailed series).
        low: The lowest bar.
        warm_up: Leading points left out of the fit (not alerted on either).
    """
    ref = np.abs(score[warm_up:][observed[warm_up:]])
    ref = ref[np.isfinite(ref)]
    if ref.size < 100:
        return threshold
    points = max(CALIBRATION_POINTS, 7 * max(season, 1))
    u = float(np.quantile(ref, 0.9))
    excess = ref[ref > u] - u
    scale = float(np.median(excess)) / math.log(2) if excess.size else 0.0
    level = u + scale * math.log(0.1 * points)
    return float(min(threshold, max(low, level)))


def shift_scores(
    score: FloatArray, observed: BoolArray, *, season: int, low: float, warm_up: int = 0
) -> FloatArray:
    """Calibrated score of sustained shifts: how unusual the recent run of point scores is.

    The rolling mean (centred) of the point scores clipped at ``+-low`` (a lone spike weighs no
    more than a moderate point: spikes are the point score's business) over an hour of
    sub-daily data, at least :data:`SHIFT_MIN_POINTS` points; then standardised by the median
    and robust spread of that mean over the series after the warm-up, since neighbouring scores
    are correlated and how much a mean of them wanders differs per series. Points whose mean is
    within :data:`SHIFT_MIN_LEVEL` of zero score 0: a shift must be large enough to matter, not
    only unusual for a very calm series. Gaps (not ``observed``) are left out of the means.
    """
    n = score.size
    window = max(SHIFT_MIN_POINTS, season // 24)
    if n < 3 * window:
        return np.zeros(n)
    clipped = np.where(observed, np.clip(score, -low, low), np.nan)
    mean = (
        pd.Series(clipped)
        .rolling(window, center=True, min_periods=window // 2)
        .mean()
        .to_numpy(np.float64)
    )
    ref = mean[warm_up:]
    ref = ref[np.isfinite(ref)]
    if ref.size < 3 * window:
        return np.zeros(n)
    centre = float(np.median(ref))
    spread = _spread(ref - centre)
    if spread <= 0:
        return np.zeros(n)
    out: FloatArray = np.where(
        np.isfinite(mean) & (np.abs(mean) >= SHIFT_MIN_LEVEL), (mean - centre) / spread, 0.0
    )
    return out


def _run(score: FloatArray, i: int, low: float) -> tuple[int, int]:
    """The run of neighbours of ``i`` whose ``score`` is beyond ``low`` in ``i``'s direction."""
    n = score.size
    sign = np.sign(score[i])
    a = i
    while a > 0 and score[a - 1] * sign > low:
        a -= 1
    b = i
    while b < n - 1 and score[b + 1] * sign > low:
        b += 1
    return a, b


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
    points: int | None = None,
    warm_up: int = 0,
    shift: FloatArray | None = None,
) -> list[Incident]:
    """Incidents from point scores (and shift scores, when given), cool-down merged, budgeted.

    The budget (with ``budget`` and ``weeks``) keeps, per kind, the incidents with the largest
    ``|impact|``: freely as many as the rarer of ``weeks`` and ``points`` (observed points, in
    :data:`CALIBRATION_POINTS`) allows, then only incidents whose
    strength (peak ``|score|`` over ``threshold``, or peak ``|shift|`` over
    :data:`SHIFT_THRESHOLD`) reaches :data:`ESCALATION` to the power of their rank past the
    free ones (see :func:`_budget`). Without ``points`` the budget is the weekly one.
    """
    spike = np.abs(score) > threshold
    sustained = np.abs(shift) > SHIFT_THRESHOLD if shift is not None else np.zeros_like(spike)
    # start, end, end of the first run (the alert), trigger, kind
    spans: list[tuple[int, int, int, int, Literal["spike", "shift"]]] = []
    for i in np.flatnonzero(spike | sustained):
        if spans and i <= spans[-1][1]:
            continue
        kind: Literal["spike", "shift"] = "spike" if spike[i] else "shift"
        measure = score if spike[i] or shift is None else shift
        a, b = _run(measure, int(i), low)
        if spans and a - spans[-1][1] <= cooldown and not _escalates(measure, spans[-1], a, b):
            # within the cool-down: the same incident, already alerted
            spans[-1] = (spans[-1][0], b, *spans[-1][2:])
        else:
            spans.append((a, b, b, int(i), kind))
    out = []
    for a, b, alert_end, trigger, kind in spans:
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
                kind=kind,
                trigger=trigger,
            )
        )
    if budget and weeks > 0:
        free = weeks if points is None else min(weeks, points / CALIBRATION_POINTS)

        def strength(inc: Incident) -> float:
            if inc.kind == "spike" or shift is None:
                return float(abs(score[inc.peak])) / threshold
            return float(np.max(np.abs(shift[inc.start : inc.end + 1]))) / SHIFT_THRESHOLD

        keep: list[Incident] = []
        for kind, rate in (("spike", ALERT_BUDGET), ("shift", SHIFT_BUDGET)):
            keep += _budget(
                [inc for inc in out if inc.kind == kind],
                free=max(1, math.ceil(rate * free)),
                strength=strength,
            )
        out = sorted(keep, key=lambda inc: inc.start)
    return out


def _escalates(measure: FloatArray, last: tuple[int, int, int, int, str], a: int, b: int) -> bool:
    """Whether the run ``a..b``, within ``last``'s cool-down, is news rather than more of it.

    It is when it starts after ``last`` ends and its peak ``|measure|`` (the point score for a
    spike, the shift score for a shift: what triggered it) is at least :data:`ESCALATION` times
    that of the incident so far. An incident that gets that much worse (a slowdown that becomes
    an outage an hour later) must be told, as an incident of its own (its own id, impact and
    place in the budget), not hidden in a merged run that raises no alert.
    """
    start, end = last[0], last[1]
    if a <= end:
        return False
    before = float(np.max(np.abs(measure[start : end + 1])))
    return float(np.max(np.abs(measure[a : b + 1]))) >= ESCALATION * before


def _budget(
    group: list[Incident], *, free: int, strength: Callable[[Incident], float]
) -> list[Incident]:
    """The incidents of one kind that alert: ``free`` of them, then an escalating bar.

    Incidents are taken largest ``|impact|`` first (the ones that cost most: the budget keeps
    what the ranking would show first). The first ``free`` are kept; each further one only when
    its ``strength`` (how many times its bar it reaches) is at least
    :data:`ESCALATION` to the power of its rank past the free ones: a series that alerts often
    must be much more extreme to alert again, so its alerts per point stay bounded whatever its
    sampling interval, while a few far-out incidents (a runaway job, a credit and a lost day in
    one quarter of daily costs) are all still told. There is no cap: the escalating bar bounds
    them (each doubling admits one more), and a cap would silence the far-out incident of a
    series whose budget noise had already used up.
    """
    ranked = sorted(group, key=lambda inc: -abs(inc.impact))
    kept = ranked[:free]
    for inc in ranked[free:]:
        if strength(inc) >= ESCALATION ** (len(kept) - free + 1):
            kept.append(inc)
    return kept


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
        threshold: The highest ``|score|`` bar that triggers a spike incident: the bar of
            heavy-tailed series; quieter ones get a lower, calibrated bar (down to ``low``, see
            :func:`calibrated_threshold`).
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
    warm_up = season if season > 1 else 0
    observed = np.isfinite(y)
    incidents = _incidents(
        score,
        y,
        expected,
        threshold=calibrated_threshold(
            score, observed, season=season, threshold=threshold, low=low, warm_up=warm_up
        ),
        low=low,
        cooldown=round(cooldown * season),
        weeks=score.size * prep.step_ns / (7 * 86_400 * 10**9),
        points=int(observed.sum()),
        warm_up=warm_up,
        shift=shift_scores(score, observed, season=season, low=low, warm_up=warm_up),
    )
    return Detection(expected=expected, score=score, incidents=tuple(incidents))


@dataclass(frozen=True)
class FitHistory:
    """What forecasters are fitted on, and the calendar effect to add back to their forecasts.

    Attributes:
        y: The history with outlying incidents replaced by their expected values (when robust)
            and the learned calendar offsets taken out.
        calendar: Offsets per calendar slot (a day of the month, monthly or quarterly), in
            the series' unit (see :func:`calendar_values`); empty when there is no recurring
            calendar peak.
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
    here, also recurring bumps the detector would not alert on. Recurring monthly or quarterly
    peaks of daily data (a month-end batch, billing, credits) are not outliers but no model's
    seasonality has them (weeks and years do not line up with months): their offsets are taken
    out here and added back to the forecast by the caller (:func:`calendar_values` on the
    future days).
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
