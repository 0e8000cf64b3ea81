"""From cost lines to the series the forecaster reads and the placement the planner starts from.

**Ragged edges.** The clouds deliver their exports at different hours, so on a given morning one
cloud may hold yesterday while another stops the day before. A latest period that holds only
some clouds is not a period of low spend, and the series of workloads on different clouds would
not end together (the planner needs one grid). :func:`complete_until` finds the end of the last
period every current cloud has complete, and says which clouds hold the others back: cut the
costs there before the three views below.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cloudbalance.exceptions import Issue, SchemaError
from cloudbalance.models import Location, Placement, Workload
from cloudbalance.provider import cloud_id
from cloudbalance.units import HOURS, normalise_consumed, period_hours, period_length

__all__ = [
    "DEFAULT_MAX_LAG",
    "KINDS",
    "PRICE_MODEL",
    "Forecasts",
    "complete_until",
    "cost_series",
    "current_placement",
    "demand_series",
    "price_series",
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
) -> tuple[datetime, tuple[str, ...]]:
    """The end (exclusive) of the periods every current cloud has complete, and what waits.

    Clouds deliver their exports at different hours, so on a given morning one of them may be
    a day behind. Its missing day is not a drop in demand or cost: the periods after the
    earliest cloud's last complete period are left out of the series (and said so) until it
    arrives. A period is complete when a cloud's lines reach its end (hourly lines up to
    midnight, or a daily line) and, given ``now``, when it is over.

    Args:
        costs: A costs frame.
        freq: The period of the series to be built.
        now: The run's time: a period that has not ended by then is never complete.
        max_lag: A cloud whose data ends more than this before the latest cloud's is stale
            (the sync step warns about it): it does not hold the others back.

    Returns:
        The first period start to leave out, and one note per cloud that holds the others back.

    Raises:
        SchemaError: The frame holds no cost line of a period or shorter.
    """
    ends = _cloud_ends(costs, freq)
    if ends.empty:
        raise SchemaError("costs", [Issue("no cost lines to find the complete periods of")])
    latest = ends.max()
    if now is not None:
        latest = min(latest, pd.Timestamp(now).floor(freq))
    current = ends[ends >= latest - pd.Timedelta(max_lag)]
    edge = min(current.min(), latest) if len(current) else latest
    step = period_length(freq)  # notes name the last period held, not its exclusive end
    notes = tuple(
        f"{name}: data ends {end - step:%Y-%m-%d} while the others reach "
        f"{latest - step:%Y-%m-%d}; the periods after {end - step:%Y-%m-%d} wait for its export"
        for name, end in current[current < latest].items()
    )
    return pd.Timestamp(edge).to_pydatetime(), notes


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


#: The model prices are forecast with (:class:`cloudbalance.forecast.baseline.SpotPrice`): the
#: median of the last non-spike days, and a spike in progress that lasts as the series' past
#: spikes did; not today's price persisted (naive) or smoothed fast (Theta), which the planner
#: chases at the cost of moves. Chosen over the robust level (``level``) by
#: ``benchmarks/backtest_planner.py`` across generated samples (docs/planning.md).
PRICE_MODEL = "spot"


def price_series(prices: pd.DataFrame, *, kinds: Sequence[str] = ("spot",)) -> pd.DataFrame:
    """Daily unit prices per ``cloud:region:SkuId:price_kind`` (the catalog's price ids)."""
    frame = prices[prices["price_kind"].isin(kinds)].copy()
    if frame.empty:
        return pd.DataFrame({"unique_id": [], "ds": [], "y": []})
    cloud = frame["ProviderName"].map(lambda p: cloud_id(p) or str(p).lower())
    frame["unique_id"] = (
        cloud + ":" + frame["RegionId"] + ":" + frame["SkuId"] + ":" + frame["price_kind"]
    )
    frame["ds"] = pd.to_datetime(frame["observed_at"]).dt.floor("D")
    daily = frame.rename(columns={"unit_price": "y"}).groupby(["unique_id", "ds"])["y"].mean()
    return daily.reset_index()


#: What a series measures: demand in replicas, cost per workload or per cloud in money, and
#: unit prices. Forecast, accuracy and spike frames carry it in their ``kind`` column.
KINDS: tuple[str, ...] = ("demand", "cost", "cloud_cost", "price")


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=[*columns, "kind"])


@dataclass(frozen=True)
class Forecasts:
    """The forecast, accuracy and spike frames of every kind, each with a ``kind`` column.

    One forecast call per kind keeps series of different units apart without encoding the kind
    in ``unique_id``: a workload and a cloud may share a name, and a reader selects by kind.

    Attributes:
        forecast: ``cloudbalance.schema.FORECAST`` columns plus ``kind``.
        accuracy: ``cloudbalance.schema.ACCURACY`` columns plus ``kind``.
        spikes: ``cloudbalance.schema.SPIKE_COLUMNS`` plus ``kind``.
        skipped: Per ``kind:unique_id``, why a series was not forecast.
    """

    forecast: pd.DataFrame
    accuracy: pd.DataFrame
    spikes: pd.DataFrame
    skipped: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def combine(cls, results: Mapping[str, Any]) -> Forecasts:
        """Join per-kind :class:`~cloudbalance.forecast.ForecastResult` values."""
        from cloudbalance.schema import ACCURACY, FORECAST, SPIKE_COLUMNS

        def joined(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
            frames = [f for f in frames if not f.empty]
            if not frames:
                return _empty(columns)
            # the store's order, so a frame read back equals the frame saved
            order = [c for c in ("kind", "unique_id", "ds", "start") if c in frames[0].columns]
            out = pd.concat(frames, ignore_index=True)
            return out.sort_values(order, kind="stable", ignore_index=True)

        return cls(
            forecast=joined(
                [r.forecast.assign(kind=k) for k, r in results.items()], FORECAST.names
            ),
            accuracy=joined(
                [r.accuracy.assign(kind=k) for k, r in results.items()], ACCURACY.names
            ),
            spikes=joined(
                [r.spikes_frame().assign(kind=k) for k, r in results.items()], SPIKE_COLUMNS
            ),
            skipped={
                f"{k}:{uid}": why for k, r in results.items() for uid, why in r.skipped.items()
            },
        )

    @classmethod
    def from_store(cls, store: Any) -> Forecasts:
        """The latest forecast kept in ``store`` (empty frames when there is none)."""
        forecast, accuracy, spikes = store.latest_forecast()
        return cls(forecast=forecast, accuracy=accuracy, spikes=spikes)

    @property
    def empty(self) -> bool:
        """No forecast at all (not the same as a forecast with no spike)."""
        return self.forecast.empty

    @staticmethod
    def _select(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
        if kind not in KINDS:
            raise ValueError(f"unknown series kind {kind!r}; kinds: {', '.join(KINDS)}")
        if frame.empty or "kind" not in frame.columns:
            return frame.drop(columns="kind", errors="ignore").iloc[0:0]
        return frame[frame["kind"] == kind].drop(columns="kind").reset_index(drop=True)

    def of(self, kind: str) -> pd.DataFrame:
        """The forecast rows of one kind, without the ``kind`` column."""
        return self._select(self.forecast, kind)

    def accuracy_of(self, kind: str) -> pd.DataFrame:
        """The accuracy rows of one kind, without the ``kind`` column."""
        return self._select(self.accuracy, kind)

    def spikes_of(self, kind: str) -> pd.DataFrame:
        """The spike warnings of one kind, without the ``kind`` column."""
        return self._select(self.spikes, kind)
