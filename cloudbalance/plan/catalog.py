"""Prices per location and workload shape: what one replica costs for one period.

The planner needs one number per workload, location and period: the cost ``c[w,l,t]`` of one
replica for one period. Providers give a prices frame (:data:`cloudbalance.schema.PRICES`) of
SKUs (a shape of vCPUs and memory) priced per unit of time, by kind (``on_demand``, ``spot``,
``committed``), observed at some instant. This module turns that frame into the per-replica
cost matrices, and keeps them:

- **Shape -> SKU.** A replica of ``vcpus``/``memory_gib`` runs on any SKU at least that big; a
  bigger SKU packs ``floor(min(sku_vcpus / vcpus, sku_mem / mem))`` replicas, so its cost per
  replica is its price divided by that. The cheapest per-replica SKU of each location wins, per
  period (the instance type may change when prices do).
- **Time.** Period ``t`` pays the latest price observed at or before its start (as-of). After the
  last observation, a forecast of prices is used when one is given (a forecast frame whose
  ``unique_id`` is ``cloud:region:SkuId:price_kind``), else the last observed price persists.
  The forecast's interval travels along as lower/upper cost bounds: the planner's guardrails
  compare a move's saving with that band. Before a SKU's first observation it has no price: the
  location is unavailable for that shape then (never back-filled with a later price), and the
  planner notes it.
- **Kinds.** A workload pays on-demand prices; a spot-tolerant one pays the cheaper of spot and
  on-demand. Committed prices are kept for reports (what covered capacity is worth): capacity
  already paid for is modelled by the planner's commitments, which make it cost nothing.
- **Units.** ``PricingUnit`` hours, days or months (730 h) are converted to the period length.
- **Clouds.** ``ProviderName`` may hold our cloud id or a FOCUS publisher name
  ("Amazon Web Services" -> ``aws``, "Microsoft" -> ``azure``, "Google Cloud" -> ``gcp``).
- **Cache and age.** Catalogs are cached by the digest of their input frames, and each memoises
  its per-shape matrices; :meth:`Catalog.age` says how old the newest price is, so a plan can say
  when it was computed from stale prices.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cloudbalance.exceptions import Issue, SchemaError
from cloudbalance.models import Location
from cloudbalance.provider import cloud_id
from cloudbalance.schema import validate_forecast, validate_prices
from cloudbalance.units import period_hours  # re-exported: periods are parsed in units only

__all__ = [
    "Catalog",
    "ReplicaCost",
    "cloud_id",
    "frame_digest",
    "load_catalog",
    "period_hours",
]

_HOURS_PER_UNIT: dict[str, float] = {
    "hour": 1.0,
    "hours": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "1 hour": 1.0,
    "h": 1.0,
    "day": 24.0,
    "days": 24.0,
    "month": 730.0,
    "months": 730.0,
}

_EPS = 1e-9
_CACHE_SIZE = 8
_CACHE: OrderedDict[str, Catalog] = OrderedDict()


def frame_digest(*frames: pd.DataFrame | None) -> str:
    """A stable content digest of frames (column names, dtypes and values)."""
    digest = hashlib.sha256()
    for frame in frames:
        if frame is None:
            digest.update(b"<none>")
            continue
        digest.update(repr(list(frame.columns)).encode())
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(hashed.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ReplicaCost:
    """Cost of one replica of one shape per location and period.

    Arrays are ``[location, period]`` in the order of ``locations``; ``NaN`` where the location
    has no SKU big enough (or no price of the kind needed).

    Attributes:
        locations: Location of each row.
        cost: What one replica costs for one period (on-demand, or the cheaper of spot and
            on-demand for a spot-tolerant workload).
        lower: Lower bound of ``cost`` (from the price forecast's interval; equal to ``cost``
            where prices are observed).
        upper: Upper bound of ``cost``.
        on_demand: The on-demand cost per replica.
        spot: The spot cost per replica.
        committed: The committed-rate cost per replica.
        kind: ``on_demand`` or ``spot``: which kind ``cost`` is, per location and period.
        sku: The SKU that gives ``cost``, per location and period (``""`` where none).
        forecast: Whether ``cost`` comes from the price forecast, per location and period.
    """

    locations: tuple[Location, ...]
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    on_demand: np.ndarray
    spot: np.ndarray
    committed: np.ndarray
    kind: np.ndarray
    sku: np.ndarray
    forecast: np.ndarray


@dataclass(frozen=True)
class _Series:
    """One priced SKU of one kind at one location over time."""

    location: Location
    sku: str
    kind: str
    vcpus: float
    memory_gib: float
    hours_per_unit: float
    observed_at: np.ndarray  # datetime64[us], sorted
    price: np.ndarray
    forecast_ds: np.ndarray  # datetime64[us], sorted; empty without a forecast
    forecast_mid: np.ndarray
    forecast_lower: np.ndarray
    forecast_upper: np.ndarray


@dataclass(frozen=True)
class Catalog:
    """Prices of every location, ready to answer "what does one replica cost here, then".

    Build it with :meth:`from_frame` (or :func:`load_catalog`, cached). It is immutable apart
    from a memo of the matrices it has already computed.

    Attributes:
        currency: The one billing currency of every price.
        observed_at: When the newest price was observed (naive UTC).
        digest: Content digest of the prices (and price forecast) it was built from.
    """

    currency: str
    observed_at: datetime
    digest: str
    _series: tuple[_Series, ...] = field(repr=False)
    _memo: dict[tuple[object, ...], ReplicaCost] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_frame(
        cls,
        prices: pd.DataFrame,
        *,
        price_forecast: pd.DataFrame | None = None,
        file: str | None = None,
    ) -> Catalog:
        """Validate a prices frame (and an optional price forecast) and index it.

        Args:
            prices: A :data:`~cloudbalance.schema.PRICES` frame.
            price_forecast: Optional :data:`~cloudbalance.schema.FORECAST` frame of unit prices,
                ``unique_id`` = ``cloud:region:SkuId:price_kind``.
            file: Source file, named in errors.

        Raises:
            SchemaError: For a bad frame, an unknown provider or pricing unit, mixed currencies,
                or an empty frame.
        """
        frame = validate_prices(prices, file=file)
        issues: list[Issue] = []
        if frame.empty:
            raise SchemaError("prices", [Issue("no prices given", file=file)])
        clouds = frame["ProviderName"].map(cloud_id)
        for pos in np.flatnonzero(clouds.isna().to_numpy()):
            issues.append(
                Issue(
                    "is not a known cloud (aws, azure, gcp or their FOCUS publisher names)",
                    column="ProviderName",
                    row=int(pos) + 1,
                    file=file,
                    value=str(frame["ProviderName"].iat[int(pos)]),
                )
            )
        units = frame["PricingUnit"].map(lambda u: _HOURS_PER_UNIT.get(str(u).strip().lower()))
        for pos in np.flatnonzero(units.isna().to_numpy()):
            issues.append(
                Issue(
                    "is not a time unit (hours, days, months)",
                    column="PricingUnit",
                    row=int(pos) + 1,
                    file=file,
                    value=str(frame["PricingUnit"].iat[int(pos)]),
                )
            )
        currencies = sorted(frame["BillingCurrency"].unique().tolist())
        if len(currencies) > 1:
            issues.append(
                Issue(
                    "prices must share one currency; convert them first",
                    column="BillingCurrency",
                    file=file,
                    value=", ".join(currencies),
                )
            )
        for pos in np.flatnonzero((frame[["vcpus", "memory_gib"]] <= 0).any(axis=1).to_numpy()):
            issues.append(
                Issue("a SKU needs positive vcpus and memory_gib", row=int(pos) + 1, file=file)
            )
        if issues:
            raise SchemaError("prices", issues)
        frame = frame.assign(_cloud=clouds, _hours=units.astype("float64"))

        forecast_groups: dict[str, pd.DataFrame] = {}
        if price_forecast is not None:
            fc = validate_forecast(price_forecast)
            for key, group in fc.groupby("unique_id", sort=False):
                forecast_groups[str(key).lower()] = group.sort_values("ds")

        series: list[_Series] = []
        keys = ["_cloud", "RegionId", "SkuId", "price_kind"]
        for (cloud, region, sku, kind), group in frame.groupby(keys, sort=True):
            group = group.sort_values("observed_at", kind="stable")
            location = Location(str(cloud), str(region))
            fc_group = forecast_groups.get(f"{location.key}:{sku}:{kind}".lower())
            empty_ds = np.array([], dtype="datetime64[us]")
            empty = np.array([], dtype="float64")
            series.append(
                _Series(
                    location=location,
                    sku=str(sku),
                    kind=str(kind),
                    vcpus=float(group["vcpus"].to_numpy()[-1]),
                    memory_gib=float(group["memory_gib"].to_numpy()[-1]),
                    hours_per_unit=float(group["_hours"].to_numpy()[-1]),
                    observed_at=group["observed_at"].to_numpy(dtype="datetime64[us]"),
                    price=group["unit_price"].to_numpy(dtype="float64"),
                    forecast_ds=(
                        empty_ds
                        if fc_group is None
                        else fc_group["ds"].to_numpy(dtype="datetime64[us]")
                    ),
                    forecast_mid=empty if fc_group is None else fc_group["yhat"].to_numpy(),
                    forecast_lower=(
                        empty if fc_group is None else fc_group["yhat_lower"].to_numpy()
                    ),
                    forecast_upper=(
                        empty if fc_group is None else fc_group["yhat_upper"].to_numpy()
                    ),
                )
            )
        newest = pd.Timestamp(frame["observed_at"].max()).to_pydatetime()
        return cls(
            currency=str(currencies[0]),
            observed_at=newest,
            digest=frame_digest(prices, price_forecast),
            _series=tuple(series),
        )

    @property
    def locations(self) -> tuple[Location, ...]:
        """Every location with at least one price, sorted."""
        return tuple(sorted({s.location for s in self._series}))

    def age(self, now: datetime | None = None) -> timedelta:
        """How old the newest price is at ``now`` (default: the current UTC time)."""
        if now is None:
            now = pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime()
        return now - self.observed_at

    def replica_cost(
        self,
        *,
        vcpus: float,
        memory_gib: float,
        spot: bool,
        periods: Sequence[datetime] | pd.DatetimeIndex,
        period: str,
        locations: Sequence[Location] | None = None,
    ) -> ReplicaCost:
        """Cost of one replica of a shape for each location and period.

        Args:
            vcpus: vCPUs of one replica.
            memory_gib: Memory of one replica.
            spot: Whether the workload may run on spot capacity.
            periods: Start of each period (naive UTC).
            period: Length of one period (pandas offset alias, e.g. ``1D``).
            locations: Rows of the result (default: :attr:`locations`).

        Returns:
            The matrices; ``NaN`` where a location cannot host the shape.
        """
        starts = pd.DatetimeIndex(list(periods)).as_unit("us").to_numpy()
        locs = tuple(locations) if locations is not None else self.locations
        key = (vcpus, memory_gib, spot, starts.tobytes(), period, locs)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        hours = period_hours(period)
        n_loc, n_t = len(locs), len(starts)
        row = {loc: i for i, loc in enumerate(locs)}
        best: dict[str, np.ndarray] = {
            kind: np.full((n_loc, n_t), np.nan) for kind in ("on_demand", "spot", "committed")
        }
        best_lower = {k: np.full((n_loc, n_t), np.nan) for k in best}
        best_upper = {k: np.full((n_loc, n_t), np.nan) for k in best}
        best_sku = {k: np.full((n_loc, n_t), "", dtype=object) for k in best}
        best_fc = {k: np.zeros((n_loc, n_t), dtype=bool) for k in best}
        for s in self._series:
            i = row.get(s.location)
            if i is None or s.kind not in best:
                continue
            pack = np.floor(min(s.vcpus / vcpus, s.memory_gib / memory_gib) + _EPS)
            if pack < 1:
                continue
            mid, lower, upper, from_fc = _price_at(s, starts)
            scale = hours / s.hours_per_unit / pack
            mid, lower, upper = mid * scale, lower * scale, upper * scale
            current = best[s.kind][i]
            better = ~np.isnan(mid) & (np.isnan(current) | (mid < current - _EPS))
            current[better] = mid[better]
            best_lower[s.kind][i][better] = lower[better]
            best_upper[s.kind][i][better] = upper[better]
            best_sku[s.kind][i][better] = s.sku
            best_fc[s.kind][i][better] = from_fc[better]
        cost = best["on_demand"].copy()
        lower_out = best_lower["on_demand"].copy()
        upper_out = best_upper["on_demand"].copy()
        sku_out = best_sku["on_demand"].copy()
        fc_out = best_fc["on_demand"].copy()
        kind = np.where(np.isnan(cost), "", "on_demand").astype(object)
        if spot:
            sp = best["spot"]
            use = ~np.isnan(sp) & (np.isnan(cost) | (sp < cost))
            cost[use] = sp[use]
            lower_out[use] = best_lower["spot"][use]
            upper_out[use] = best_upper["spot"][use]
            sku_out[use] = best_sku["spot"][use]
            fc_out[use] = best_fc["spot"][use]
            kind[use] = "spot"
        result = ReplicaCost(
            locations=locs,
            cost=cost,
            lower=np.fmin(lower_out, cost),
            upper=np.fmax(upper_out, cost),
            on_demand=best["on_demand"],
            spot=best["spot"],
            committed=best["committed"],
            kind=kind,
            sku=sku_out,
            forecast=fc_out,
        )
        self._memo[key] = result
        return result


def _price_at(
    s: _Series, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit price (mid, lower, upper) of a series at each period start, and whether forecast."""
    pos = np.searchsorted(s.observed_at, starts, side="right") - 1
    # Before its first observation a SKU has no price: unavailable, never back-filled.
    mid = np.where(pos >= 0, s.price[np.clip(pos, 0, None)], np.nan)
    lower = mid.copy()
    upper = mid.copy()
    from_fc = np.zeros(len(starts), dtype=bool)
    if len(s.forecast_ds):
        after = starts > s.observed_at[-1]
        fpos = np.searchsorted(s.forecast_ds, starts, side="right") - 1
        use = after & (fpos >= 0)
        f = np.clip(fpos, 0, None)
        mid = np.where(use, s.forecast_mid[f], mid)
        lower = np.where(use, s.forecast_lower[f], lower)
        upper = np.where(use, s.forecast_upper[f], upper)
        from_fc = use
    return (
        np.maximum(mid, 0.0),  # NaN (no price yet) stays NaN
        np.maximum(lower, 0.0),
        np.maximum(upper, 0.0),
        from_fc,
    )


def load_catalog(
    prices: pd.DataFrame,
    *,
    price_forecast: pd.DataFrame | None = None,
    file: str | None = None,
) -> Catalog:
    """Like :meth:`Catalog.from_frame`, but cached by the frames' content digest."""
    digest = frame_digest(prices, price_forecast)
    cached = _CACHE.get(digest)
    if cached is not None:
        _CACHE.move_to_end(digest)
        return cached
    catalog = Catalog.from_frame(prices, price_forecast=price_forecast, file=file)
    _CACHE[digest] = catalog
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return catalog
