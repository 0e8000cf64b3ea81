"""From cost lines to the series the forecaster reads and the placement the planner starts from.

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
from datetime import datetime

import numpy as np
import pandas as pd

from cloudbalance.exceptions import Issue, SchemaError
from cloudbalance.models import Location, Placement, Workload
from cloudbalance.provider import cloud_id
from cloudbalance.units import HOURS, normalise_consumed, period_hours

__all__ = ["cost_series", "current_placement", "demand_series"]

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
