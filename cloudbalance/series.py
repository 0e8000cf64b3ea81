"""From cost lines to the series the forecaster reads and the placement the planner starts from.

**Ragged edges.** The clouds deliver their exports at different hours, so on a given morning one
cloud may hold yesterday while another stops the day before. A latest period that holds only
some clouds is not a period of low spend, and the series of workloads on different clouds would
not end together (the planner needs one grid). :func:`complete_until` finds the end of the last
period every current cloud has reached; :func:`trim_incomplete` cuts a costs frame there and says
what it left out. Call it before the three views below.

Three views of one costs frame:

- :func:`cost_series`: money per workload (or provider, region, service) and period;
- :func:`demand_series`: capacity per workload in replicas, from compute usage;
- :func:`current_placement`: replicas per workload and location in the latest period.

Demand is read from compute lines (``ServiceCategory == "Compute"``) whose ``ConsumedUnit`` is
time (hours; seconds, minutes and packs such as ``10 Hours`` are converted by
:mod:`cloudbalance.units`): one replica is one instance of the workload's shape, so
instance-hours divided by the hours in a period is replicas. Money is never summed across
currencies: a frame in several currencies gets one series per (key, currency), with the currency
in the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cloudbalance.exceptions import Issue, SchemaError
from cloudbalance.models import Location, Placement, Workload
from cloudbalance.provider import cloud_id
from cloudbalance.units import HOURS, normalise_consumed, period_hours, period_length

__all__ = [
    "DEFAULT_MAX_LAG",
    "Trimmed",
    "complete_until",
    "cost_series",
    "current_placement",
    "demand_series",
    "trim_incomplete",
]

#: A cloud further behind the latest than this is stale (a run warns about it), not a ragged
#: edge: it does not hold back the others' complete periods.
DEFAULT_MAX_LAG = timedelta(days=3)

_KEYS = {
    "workload": "x_Workload",
    "provider": "ProviderName",
    "cloud": "x_Cloud",
    "region": "RegionId",
    "service": "ServiceName",
    "account": "BillingAccountId",
}


def _fill(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Every series on a regular grid from its first to its last period (missing = 0)."""
    parts = []
    for uid, part in frame.groupby("unique_id", sort=True):
        grid = pd.date_range(part["ds"].min(), part["ds"].max(), freq=freq)
        values = part.set_index("ds")["y"].reindex(grid, fill_value=0.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": grid, "y": values.to_numpy()}))
    if not parts:
        return pd.DataFrame(
            {
                "unique_id": pd.Series(dtype=object),
                "ds": pd.Series(dtype="datetime64[us]"),
                "y": pd.Series(dtype=float),
            }
        )
    return pd.concat(parts, ignore_index=True)


def _cloud_ends(costs: pd.DataFrame, freq: str) -> pd.Series:
    """Per cloud, the end of its last complete period (``ChargePeriodEnd`` floored to ``freq``)."""
    short = (costs["ChargePeriodEnd"] - costs["ChargePeriodStart"]) <= period_length(freq)
    frame = costs.loc[short.to_numpy(dtype=bool)]
    cloud = (
        frame["x_Cloud"].fillna(frame["ProviderName"].map(cloud_id)).fillna(frame["ProviderName"])
    )
    ends = frame.groupby(cloud.to_numpy())["ChargePeriodEnd"].max()
    return pd.Series(ends.dt.floor(freq)).sort_index()


def complete_until(
    costs: pd.DataFrame,
    *,
    freq: str = "D",
    now: datetime | None = None,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> pd.Timestamp | None:
    """End (exclusive) of the last period that every current cloud has complete.

    Args:
        costs: A costs frame.
        freq: The period of the series to be built.
        now: The run's time: a period that has not ended by then is never complete.
        max_lag: Clouds whose data ends more than this before the latest cloud's are stale
            (warned about by the run) and do not hold the others back.

    Returns:
        The first period start to leave out, or ``None`` for a frame without cost lines.
    """
    if costs.empty:
        return None
    ends = _cloud_ends(costs, freq)
    if ends.empty:
        return None
    latest = ends.max()
    if now is not None:
        latest = min(latest, pd.Timestamp(now).floor(freq))
    current = ends[ends >= latest - pd.Timedelta(max_lag)]
    return pd.Timestamp(min(current.min(), latest)) if len(current) else pd.Timestamp(latest)


@dataclass(frozen=True)
class Trimmed:
    """A costs frame cut at its last complete period, and what was left out.

    Attributes:
        costs: The lines charged before ``until``.
        until: End (exclusive) of the last complete period; ``None`` for an empty frame.
        dropped: Lines left out (charged from ``until`` on).
        behind: Clouds whose data ends at ``until`` while others reach further.
    """

    costs: pd.DataFrame
    until: pd.Timestamp | None
    dropped: int
    behind: tuple[str, ...]

    @property
    def note(self) -> str | None:
        """One line for the run's output when lines were left out, else ``None``."""
        if not self.dropped or self.until is None:
            return None
        who = f" ({', '.join(self.behind)} not there yet)" if self.behind else ""
        return (
            f"data complete until {self.until:%Y-%m-%d %H:%M}{who}: {self.dropped} later "
            "line(s) wait for the next run"
        )


def trim_incomplete(
    costs: pd.DataFrame,
    *,
    freq: str = "D",
    now: datetime | None = None,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Trimmed:
    """Leave out the periods not every current cloud has complete (see :func:`complete_until`)."""
    until = complete_until(costs, freq=freq, now=now, max_lag=max_lag)
    if until is None:
        return Trimmed(costs, None, 0, ())
    keep = (costs["ChargePeriodStart"] < until).to_numpy(dtype=bool)
    ends = _cloud_ends(costs, freq)
    behind = tuple(str(c) for c, end in ends.items() if end == until and bool((ends > until).any()))
    return Trimmed(costs.loc[keep].reset_index(drop=True), until, int((~keep).sum()), behind)


def cost_series(
    costs: pd.DataFrame,
    *,
    by: str = "workload",
    freq: str = "D",
    measure: str = "EffectiveCost",
    include_unattributed: bool = False,
) -> pd.DataFrame:
    """Money per ``by`` and period as a series frame (``unique_id, ds, y``).

    Args:
        costs: A costs frame.
        by: ``workload``, ``provider``, ``cloud``, ``region``, ``service`` or ``account``.
        freq: Period (pandas alias: ``D``, ``h``, ``W``...).
        measure: ``EffectiveCost`` (amortised, what the planner optimises), ``BilledCost`` or
            ``ListCost``.
        include_unattributed: Keep lines with no workload (as ``unattributed``).

    Raises:
        SchemaError: ``by`` or ``measure`` is not a costs column we can group or total.
    """
    if by not in _KEYS:
        raise SchemaError(
            "costs", [Issue(f"cannot group by {by!r}; use one of {', '.join(_KEYS)}")]
        )
    if measure not in ("EffectiveCost", "BilledCost", "ListCost"):
        raise SchemaError("costs", [Issue(f"cannot total {measure!r}")])
    key = _KEYS[by]
    frame = costs[[key, "ChargePeriodStart", "BillingCurrency", measure]].copy()
    if key == "x_Cloud":
        frame[key] = frame[key].fillna(costs["ProviderName"].map(cloud_id))
    if include_unattributed:
        frame[key] = frame[key].fillna("unattributed")
    frame = frame.dropna(subset=[key])
    frame["ds"] = frame["ChargePeriodStart"].dt.floor(freq)
    several = frame["BillingCurrency"].nunique() > 1
    frame["unique_id"] = (
        frame[key].astype(str) + " (" + frame["BillingCurrency"].astype(str) + ")"
        if several
        else frame[key].astype(str)
    )
    grouped = frame.rename(columns={measure: "y"}).groupby(["unique_id", "ds"])["y"].sum()
    return _fill(grouped.reset_index(), freq)


def _compute_hours(costs: pd.DataFrame) -> pd.DataFrame:
    """Compute usage lines of attributed workloads, ``ConsumedQuantity`` in hours.

    Units are normalised at ingest; a frame built elsewhere (seconds, ``Hrs``, ``10 Hours``)
    is normalised here by the same rule (:mod:`cloudbalance.units`).
    """
    mask = (costs["ServiceCategory"] == "Compute") & costs["x_Workload"].notna()
    mask &= costs["ChargeCategory"] == "Usage"
    compute = normalise_consumed(costs.loc[mask.to_numpy(dtype=bool)])
    return compute[(compute["ConsumedUnit"] == HOURS).to_numpy(dtype=bool)]


def demand_series(
    costs: pd.DataFrame, workloads: Sequence[Workload], *, freq: str = "D"
) -> pd.DataFrame:
    """Replicas per workload and period, from compute instance-hours.

    Only the given workloads are returned (by name, as ``unique_id``), each on a regular grid.
    """
    names = {w.name for w in workloads}
    compute = _compute_hours(costs)
    compute = compute[compute["x_Workload"].isin(names)]
    frame = pd.DataFrame(
        {
            "unique_id": compute["x_Workload"].astype(str),
            "ds": compute["ChargePeriodStart"].dt.floor(freq),
            "y": compute["ConsumedQuantity"].astype(float) / period_hours(freq),
        }
    )
    grouped = frame.groupby(["unique_id", "ds"])["y"].sum()
    return _fill(grouped.reset_index(), freq)


def current_placement(
    costs: pd.DataFrame,
    workloads: Sequence[Workload],
    *,
    at: datetime | None = None,
    freq: str = "D",
) -> tuple[Placement, ...]:
    """Replicas per workload and location in the period starting at ``at`` (default: latest).

    Fractional replicas (an instance that ran part of the day) are rounded up: capacity that
    ran must be kept available.
    """
    names = {w.name for w in workloads}
    compute = _compute_hours(costs)
    compute = compute[compute["x_Workload"].isin(names)].copy()
    if compute.empty:
        return ()
    compute["ds"] = compute["ChargePeriodStart"].dt.floor(freq)
    when = pd.Timestamp(at).floor(freq) if at is not None else compute["ds"].max()
    latest = compute[compute["ds"] == when].copy()
    latest["cloud"] = latest["x_Cloud"].fillna(latest["ProviderName"].map(cloud_id))
    latest = latest.dropna(subset=["cloud", "RegionId"])
    grouped = latest.groupby(["x_Workload", "cloud", "RegionId"], as_index=False)[
        "ConsumedQuantity"
    ].sum()
    hours = period_hours(freq)
    return tuple(
        Placement(
            str(row.x_Workload),
            Location(str(row.cloud), str(row.RegionId)),
            int(np.ceil(float(row.ConsumedQuantity) / hours - 1e-9)),
        )
        for row in grouped.itertuples(index=False)
    )
