"""Feedback on anomalies: a person says whether an incident was a real problem or expected.

The labels are those of AWS Cost Anomaly Detection, so people who know it know these:

- ``YES``: a real anomaly; it stays flagged (and the label is kept for tuning);
- ``NO``: not an anomaly (a false alarm);
- ``PLANNED_ACTIVITY``: expected because someone planned it (a migration, a load test).

``NO`` and ``PLANNED_ACTIVITY`` suppress the labelled incident and **the same pattern** in later
runs: an incident of the same series, in the same direction, starting at the same slot of the
series' calendar (same time of day for sub-daily data; same weekday, same day of month or same
day before the month's end for daily data), and no larger than :data:`PATTERN_GROWTH` times the
labelled one's impact. Anything bigger is flagged again: the label explained the old size, not a
new one. Labels live in the store (``Store.add_anomaly_feedback``), so they form a history that
can be used to tune the detector.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from cloudbalance.exceptions import ForecastError

__all__ = [
    "FEEDBACK_COLUMNS",
    "PATTERN_GROWTH",
    "AnomalyFeedback",
    "Label",
    "matching_feedback",
    "parse_anomaly_id",
]

#: Columns of the feedback frame (``Store.anomaly_feedback()``).
FEEDBACK_COLUMNS: tuple[str, ...] = (
    "anomaly_id",
    "unique_id",
    "start",
    "label",
    "impact",
    "note",
    "labelled_at",
)
#: A later incident up to this multiple of the labelled impact is the same pattern.
PATTERN_GROWTH = 1.5

_DAY_NS = 86_400 * 10**9


class Label(enum.StrEnum):
    """Whether an anomaly was one (the labels of AWS Cost Anomaly Detection)."""

    YES = "YES"
    NO = "NO"
    PLANNED_ACTIVITY = "PLANNED_ACTIVITY"

    @classmethod
    def parse(cls, text: str) -> Label:
        """``yes``, ``no``, ``planned`` or ``planned_activity`` (any case).

        Raises:
            ForecastError: Any other text.
        """
        key = text.strip().upper().replace("-", "_")
        key = "PLANNED_ACTIVITY" if key == "PLANNED" else key
        try:
            return cls(key)
        except ValueError:
            raise ForecastError(f"anomaly label must be yes, no or planned, got {text!r}") from None

    @property
    def suppresses(self) -> bool:
        """True when the label says the incident was expected (not to be flagged again)."""
        return self is not Label.YES


@dataclass(frozen=True)
class AnomalyFeedback:
    """One label on one incident.

    Attributes:
        anomaly_id: The incident's id (``<unique_id>@<start>``, from ``detect_anomalies``).
        label: YES, NO or PLANNED_ACTIVITY.
        impact: The incident's impact when labelled (``y - expected``, summed); NaN if unknown,
            in which case any size of the same pattern is suppressed.
        note: Free text (why).
        labelled_at: When (UTC).
    """

    anomaly_id: str
    label: Label
    impact: float = math.nan
    note: str = ""
    labelled_at: datetime | None = None

    @property
    def unique_id(self) -> str:
        """The series the incident belongs to."""
        return parse_anomaly_id(self.anomaly_id)[0]

    @property
    def start(self) -> pd.Timestamp:
        """When the incident started."""
        return parse_anomaly_id(self.anomaly_id)[1]


def parse_anomaly_id(anomaly_id: str) -> tuple[str, pd.Timestamp]:
    """Split ``<unique_id>@<start>`` into the series and the start time.

    Raises:
        ForecastError: Not an anomaly id.
    """
    uid, sep, when = anomaly_id.rpartition("@")
    if not sep or not uid:
        raise ForecastError(
            f"{anomaly_id!r} is not an anomaly id (expected <series>@<start>, as in the "
            "anomaly_id column of `cloudbalance anomalies`)"
        )
    try:
        start = pd.Timestamp(when)
    except ValueError:
        start = None
    if start is None or pd.isna(start):
        raise ForecastError(f"{anomaly_id!r}: {when!r} is not a time")
    return uid, start


def _same_slot(a: pd.Timestamp, b: pd.Timestamp, step_ns: int) -> bool:
    if step_ns < _DAY_NS:
        return a.time() == b.time()
    to_end_a = a.days_in_month - a.day
    to_end_b = b.days_in_month - b.day
    return a.day_of_week == b.day_of_week or a.day == b.day or to_end_a == to_end_b


def matching_feedback(
    feedback: pd.DataFrame | None,
    unique_id: str,
    anomaly_id: str,
    start: pd.Timestamp,
    impact: float,
    step_ns: int,
) -> str | None:
    """The label that applies to an incident, or None.

    An exact label on the incident wins (YES included); otherwise the newest suppressing label of
    the same pattern (see the module docstring) applies.
    """
    if feedback is None or feedback.empty:
        return None
    mine = feedback[feedback["unique_id"] == unique_id]
    if mine.empty:
        return None
    mine = mine.sort_values("labelled_at", kind="stable")
    exact = mine[mine["anomaly_id"] == anomaly_id]
    if not exact.empty:
        return str(exact["label"].iloc[-1])
    rows = zip(
        mine["label"].astype(str), mine["start"], mine["impact"].astype(np.float64), strict=True
    )
    for label, when, labelled in list(rows)[::-1]:
        if not Label(label).suppresses:
            continue
        if not _same_slot(pd.Timestamp(when), start, step_ns):
            continue
        if math.isfinite(labelled) and labelled != 0:
            if np.sign(labelled) != np.sign(impact):
                continue
            if abs(impact) > PATTERN_GROWTH * abs(labelled):
                continue
        return label
    return None
