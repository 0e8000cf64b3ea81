"""From a user's series frame to regular per-series arrays: frequency, duplicates, gaps.

Real exports are messy: the same hour billed twice, a day missing, timestamps a few seconds off
the grid, one series hourly and another daily in the same file. This module decides, per series,
the regular step the data follows (the most common spacing, snapped to a calendar unit between a
minute and a week), puts every observation on that grid, aggregates what lands on the same slot
(sum by default: costs add up; ``mean``/``max``/``last`` for gauges), leaves missing slots as NaN
(the models treat them as gaps, not zeros) and reports every change it made, so nothing is silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from cloudbalance.exceptions import ForecastError
from cloudbalance.schema import SERIES

__all__ = [
    "SERIES_INPUT",
    "Aggregate",
    "Prepared",
    "infer_step",
    "prepare_series",
    "step_label",
]

#: The series a user brings: like ``SERIES``, but an empty ``y`` is a missing point (a gap,
#: reported per series), not an error: real exports have holes.
SERIES_INPUT = replace(
    SERIES,
    columns=tuple(replace(c, nullable=True) if c.name == "y" else c for c in SERIES.columns),
)

Aggregate = Literal["sum", "mean", "max", "last"]

_MIN = 60 * 10**9
_CANDIDATES_NS: tuple[int, ...] = tuple(
    m * _MIN for m in (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440, 10080)
)
#: Frequencies we infer: any regular step from one minute to one week.
MIN_STEP_NS = _CANDIDATES_NS[0]
MAX_STEP_NS = _CANDIDATES_NS[-1]


@dataclass(frozen=True)
class Prepared:
    """One series on its regular grid.

    Attributes:
        unique_id: The series.
        ds: Regular timestamps, ``step_ns`` apart, first to last observation.
        y: Values; NaN where the grid slot had no observation.
        step_ns: The inferred step in nanoseconds.
        notes: What was changed to get here, in words (empty when nothing was).
    """

    unique_id: str
    ds: npt.NDArray[np.datetime64]
    y: npt.NDArray[np.float64]
    step_ns: int
    notes: tuple[str, ...] = field(default=())

    @property
    def season(self) -> int:
        """Steps per natural cycle: a week for daily data, a day for sub-daily, else 1."""
        return season_length(self.step_ns)

    @property
    def observed(self) -> int:
        """Number of non-missing values."""
        return int((~np.isnan(self.y)).sum())


def season_length(step_ns: int) -> int:
    """The seasonal period used by naive baselines and MASE, in steps."""
    day = 24 * 60 * _MIN
    if step_ns == day:
        return 7
    if step_ns < day and day % step_ns == 0:
        return day // step_ns
    return 1


def step_label(step_ns: int) -> str:
    """A pandas frequency string for ``step_ns`` (``D``, ``h``, ``15min``, ``7D``)."""
    minutes = step_ns // _MIN
    if minutes % 1440 == 0:
        return f"{minutes // 1440}D" if minutes != 1440 else "D"
    if minutes % 60 == 0:
        return f"{minutes // 60}h" if minutes != 60 else "h"
    return f"{minutes}min"


def infer_step(ds: npt.NDArray[np.datetime64]) -> int:
    """The regular step of sorted, distinct timestamps, snapped to a known calendar unit.

    The most common positive spacing wins (robust to gaps and a few odd timestamps); it is then
    snapped to the nearest candidate between a minute and a week.

    Raises:
        ForecastError: Fewer than two distinct timestamps.
    """
    ns = np.unique(ds.astype("datetime64[ns]").astype(np.int64))
    if ns.size < 2:
        raise ForecastError("cannot infer a frequency from fewer than two timestamps")
    diffs = np.diff(ns)
    values, counts = np.unique(diffs, return_counts=True)
    mode = int(values[np.argmax(counts)])
    cands = np.asarray(_CANDIDATES_NS, dtype=np.float64)
    best = int(np.argmin(np.abs(np.log(cands) - np.log(float(mode)))))
    return int(_CANDIDATES_NS[best])


def prepare_series(
    frame: pd.DataFrame,
    *,
    aggregate: Aggregate = "sum",
    freq: str | None = None,
    file: str | None = None,
) -> Iterator[Prepared]:
    """Validate a ``unique_id, ds, y`` frame and yield each series on a regular grid.

    Args:
        frame: The series frame; duplicated ``(unique_id, ds)`` are allowed here.
        aggregate: How values that fall on the same grid slot combine.
        freq: Force a pandas frequency (``D``, ``h``, ``15min``) instead of inferring it.
        file: Source file, named in schema errors.

    Raises:
        SchemaError: Missing columns, unparseable timestamps or values (file, row, column).
        ForecastError: Every ``y`` value is empty (empty values are otherwise gaps).
    """
    if aggregate not in ("sum", "mean", "max", "last"):
        raise ForecastError(f"aggregate must be sum, mean, max or last, got {aggregate!r}")
    data = SERIES_INPUT.validate(frame, file=file, extra="drop")
    empty = data["y"].isna()
    if empty.all() and len(data):
        raise ForecastError(f"{file or 'the series'}: every y value is empty; nothing to use")
    forced = _fixed_step(freq) if freq else None
    for uid, part in data.groupby("unique_id", sort=True):
        holes = int(part["y"].isna().sum())
        kept = part[part["y"].notna()] if holes else part
        if kept.empty:
            # nothing left of this series: it has no observation, which the caller reports
            kept = part.iloc[:1]
        prep = _regularise(str(uid), kept, aggregate=aggregate, forced=forced)
        if holes:
            note = f"{holes} empty y value(s) are treated as missing points"
            prep = replace(prep, notes=(note, *prep.notes))
        yield prep


def _fixed_step(freq: str) -> int:
    """Nanoseconds of a fixed pandas frequency (``D``, ``h``, ``15min``); months are not fixed."""
    from cloudbalance.units import period_length

    try:
        step = int(period_length(freq).value)
    except ValueError as err:
        raise ForecastError(
            f"frequency {freq!r} is not a fixed step; use minutes, hours, days or weeks"
        ) from err
    if step < MIN_STEP_NS:
        raise ForecastError(f"frequency {freq!r} is shorter than a minute")
    return step


def _regularise(
    uid: str, part: pd.DataFrame, *, aggregate: Aggregate, forced: int | None
) -> Prepared:
    notes: list[str] = []
    ds = part["ds"].to_numpy(dtype="datetime64[ns]")
    y = part["y"].to_numpy(dtype=np.float64)
    order = np.argsort(ds, kind="stable")
    ds, y = ds[order], y[order]
    if forced:
        step = forced
    elif np.unique(ds).size < 2:
        # nothing to infer from; the forecast then reports InsufficientHistoryError
        step = 24 * 60 * _MIN
        notes.append("a single timestamp: frequency assumed daily")
    else:
        step = infer_step(ds)
    ns = ds.astype(np.int64)
    origin = int(ns[0])
    slot = np.rint((ns - origin) / step).astype(np.int64)
    off_grid = int(np.count_nonzero(ns != origin + slot * step))
    if off_grid:
        notes.append(f"{off_grid} timestamps off the {step_label(step)} grid were snapped to it")
    n_slots = int(slot[-1]) + 1
    out = np.full(n_slots, np.nan)
    uniq, first_idx, counts = np.unique(slot, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int((counts - 1).sum())
        notes.append(f"{dup} duplicated timestamps were combined with {aggregate}")
        frame = pd.DataFrame({"slot": slot, "y": y})
        agg = frame.groupby("slot", sort=True)["y"].agg(aggregate)
        out[agg.index.to_numpy()] = agg.to_numpy(dtype=np.float64)
    else:
        out[uniq] = y[first_idx]
    missing = int(n_slots - uniq.size)
    if missing:
        notes.append(f"{missing} missing {step_label(step)} periods are treated as gaps")
    grid = (origin + np.arange(n_slots, dtype=np.int64) * step).astype("datetime64[ns]")
    return Prepared(unique_id=uid, ds=grid, y=out, step_ns=step, notes=tuple(notes))
