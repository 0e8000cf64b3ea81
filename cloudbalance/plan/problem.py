"""The planning problem as one typed, frozen value: what the MILP is built from.

:class:`Problem` holds every array the formulation (:mod:`cloudbalance.plan.milp`) reads, and the
cost arithmetic shared by the plan, its baseline and every later reader of a stored plan (the
commit message, policies, verification): they call its methods, never index the stored dict.
:func:`build_problem` turns frames and specs into one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from cloudbalance.exceptions import Issue, PlanError, SchemaError
from cloudbalance.models import Location, Placement, Plan, Quota, Workload, proportional
from cloudbalance.plan.catalog import Catalog, period_hours
from cloudbalance.schema import ACCURACY, validate_forecast

__all__ = [
    "PLANNER_VERSION",
    "Budget",
    "Commitment",
    "Egress",
    "Problem",
    "Quota",
    "baseline",
    "build_problem",
    "coverage",
    "demand_replicas",
    "evaluate",
    "evaluate_cloud",
]

_EPS = 1e-6
PLANNER_VERSION = 1


@dataclass(frozen=True)
class Budget:
    """At most ``amount`` spent on one cloud over the horizon.

    Spend is replicas plus move costs at the cloud's locations, net of commitments.
    """

    cloud: str
    amount: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"cloud": self.cloud, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["cloud"]).lower(), float(data["amount"]))


@dataclass(frozen=True)
class Commitment:
    """Capacity already paid for: it costs nothing up to its size.

    Either ``vcpus`` (reserved instances, committed-use discounts: regional vCPUs, so ``region``
    is required) or ``amount`` (savings plans: spend per period covered in the cloud, or in one
    region when ``region`` is set).

    Attributes:
        cloud: Our cloud id.
        region: The region, for regional commitments.
        vcpus: vCPUs covered in each period.
        amount: Spend covered in each period (billing currency).
        name: A label for reports.
        start: First instant it covers (naive UTC; ``None``: already active).
        end: First instant it no longer covers (``None``: beyond the horizon).
    """

    cloud: str
    region: str | None = None
    vcpus: float = 0.0
    amount: float = 0.0
    name: str = ""
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if (self.vcpus > 0) == (self.amount > 0):
            raise PlanError(
                f"commitment {self.name or self.cloud!r}: give exactly one of vcpus or amount"
            )
        if self.vcpus > 0 and not self.region:
            raise PlanError(f"commitment {self.name or self.cloud!r}: vcpus need a region")

    def active(self, when: datetime) -> bool:
        """Whether it covers the period starting at ``when``."""
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)

    def covers(self, location: Location) -> bool:
        """Whether it applies at ``location``."""
        return location.cloud == self.cloud and self.region in (None, location.region)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "cloud": self.cloud,
            "region": self.region,
            "vcpus": self.vcpus,
            "amount": self.amount,
            "name": self.name,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Commitment:
        """Inverse of :meth:`to_dict`."""
        start, end = data.get("start"), data.get("end")
        return cls(
            cloud=str(data["cloud"]).lower(),
            region=data.get("region"),
            vcpus=float(data.get("vcpus") or 0.0),
            amount=float(data.get("amount") or 0.0),
            name=str(data.get("name") or ""),
            start=datetime.fromisoformat(start) if start else None,
            end=datetime.fromisoformat(end) if end else None,
        )


@dataclass(frozen=True)
class Egress:
    """Price per GB of data leaving a cloud: to another region of it, or out to the internet.

    Data gravity (:attr:`~cloudbalance.models.Workload.data_location`) is priced with these: the
    GB a workload exchanges with its data are charged at the rate of the data's cloud, as data
    leaving it: ``inter_region`` when the replica runs in another region of that cloud,
    ``internet`` when it runs on another cloud, nothing in the data's own region. The defaults
    are the clouds' first-tier list prices in North America and Europe (2025); set your own in
    ``plan.egress`` of ``cloudbalance.yaml`` when your contract differs.

    Attributes:
        inter_region: Cloud id -> price per GB to another region of the same cloud.
        internet: Cloud id -> price per GB out of the cloud.
    """

    inter_region: Mapping[str, float] = field(
        default_factory=lambda: {"aws": 0.02, "azure": 0.02, "gcp": 0.02}
    )
    internet: Mapping[str, float] = field(
        default_factory=lambda: {"aws": 0.09, "azure": 0.087, "gcp": 0.12}
    )

    def rate(self, source: Location, destination: Location) -> float:
        """Price per GB from ``source`` (where the data lives) to ``destination``.

        Raises:
            PlanError: When the source's cloud has no rate of the kind needed.
        """
        if source == destination:
            return 0.0
        table, kind = (
            (self.inter_region, "inter_region")
            if source.cloud == destination.cloud
            else (self.internet, "internet")
        )
        if source.cloud not in table:
            raise PlanError(f"no {kind} egress rate for cloud {source.cloud!r} (plan.egress)")
        return float(table[source.cloud])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"inter_region": dict(self.inter_region), "internet": dict(self.internet)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Egress:
        """Inverse of :meth:`to_dict`; clouds not given keep the default rates.

        Raises:
            PlanError: An unknown table or a negative rate.
        """
        unknown = sorted(set(data) - {"inter_region", "internet"})
        if unknown:
            raise PlanError(
                f"egress: unknown key(s) {', '.join(unknown)} (use inter_region and internet)"
            )
        default = cls()
        tables: list[dict[str, float]] = []
        for name, base in (("inter_region", default.inter_region), ("internet", default.internet)):
            given = {str(k).lower(): float(v) for k, v in (data.get(name) or {}).items()}
            bad = sorted(k for k, v in given.items() if not v >= 0)
            if bad:
                raise PlanError(f"egress.{name}: rates must be >= 0 ({', '.join(bad)})")
            tables.append({**base, **given})
        return cls(inter_region=tables[0], internet=tables[1])


def _arr_to_list(values: np.ndarray) -> Any:
    if values.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in values.ravel().tolist()]
    return values.ravel().tolist()


def _list_to_arr(values: Any) -> np.ndarray:
    return np.array(values, dtype="float64")


@dataclass(frozen=True)
class Problem:
    """Everything the MILP is built from, as plain arrays; stored in ``Plan.inputs``.

    Attributes:
        workloads: The workloads, in row order.
        locations: The locations, in column order (every priced one and every current one).
        period_start: Start of period 1.
        period: Period length (pandas offset alias).
        demand: ``[W, T]`` replicas to serve.
        cost: ``[W, L, T]`` cost of one replica for one period; ``NaN`` = unavailable.
        cost_lower: ``[W, L, T]`` lower bound of ``cost`` (price forecast interval).
        cost_upper: ``[W, L, T]`` upper bound of ``cost``.
        current: ``[W, L]`` replicas now.
        confidence: ``[W]`` 0..1.
        quotas: vCPU quotas.
        budgets: Budgets per cloud over the horizon.
        commitments: Capacity already paid for.
        currency: Currency of every amount.
        kind: ``[W, L, T]`` price kind of ``cost`` (explanations only).
        forecast_price: ``[W, L, T]`` whether ``cost`` comes from a price forecast.
        confidence_source: ``[W]`` where each confidence comes from: ``backtest`` (the
            accuracy frame), ``interval`` (the forecast interval's width) or ``none``.
        egress: Egress rates that price data gravity.

    Readers of a stored plan go through :meth:`of` and the methods below (stacks, demand,
    costs of a placement): the stored dict's layout is this class's business alone.
    """

    workloads: tuple[Workload, ...]
    locations: tuple[Location, ...]
    period_start: datetime
    period: str
    demand: np.ndarray
    cost: np.ndarray
    cost_lower: np.ndarray
    cost_upper: np.ndarray
    current: np.ndarray
    confidence: np.ndarray
    quotas: tuple[Quota, ...] = ()
    budgets: tuple[Budget, ...] = ()
    commitments: tuple[Commitment, ...] = ()
    currency: str = "USD"
    kind: np.ndarray = field(default_factory=lambda: np.empty((0, 0, 0), dtype=object))
    forecast_price: np.ndarray = field(default_factory=lambda: np.empty((0, 0, 0), dtype=bool))
    confidence_source: tuple[str, ...] = ()
    egress: Egress = field(default_factory=Egress)

    @classmethod
    def of(cls, plan: Plan) -> Problem | None:
        """The problem a plan was solved from, or ``None`` when it does not carry a readable one.

        Plans made outside the planner (hand-written, older versions) carry none; their readers
        fall back to what the plan itself says.
        """
        data = plan.inputs.get("problem") if isinstance(plan.inputs, Mapping) else None
        if not isinstance(data, Mapping):
            return None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, IndexError):
            return None

    def subset(self, rows: Sequence[int]) -> Problem:
        """The same problem for the workloads at ``rows`` only (shared limits unchanged)."""
        idx = np.asarray(rows, dtype=np.int64)
        return dataclasses.replace(
            self,
            workloads=tuple(self.workloads[i] for i in idx),
            demand=self.demand[idx],
            cost=self.cost[idx],
            cost_lower=self.cost_lower[idx],
            cost_upper=self.cost_upper[idx],
            current=self.current[idx],
            confidence=self.confidence[idx],
            kind=self.kind[idx] if self.kind.size else self.kind,
            forecast_price=self.forecast_price[idx]
            if self.forecast_price.size
            else self.forecast_price,
            confidence_source=tuple(self.confidence_source[i] for i in idx)
            if self.confidence_source
            else (),
        )

    def index(self, workload: str) -> int | None:
        """Row of a workload (``None`` when the problem does not have it)."""
        for i, w in enumerate(self.workloads):
            if w.name == workload:
                return i
        return None

    def stacks(self) -> dict[str, str]:
        """Workload -> ``project/stack`` for the workloads that name one."""
        return {w.name: w.stack for w in self.workloads if w.stack}

    def demand_of(self, workload: str) -> list[int] | None:
        """Replicas per period the planner served for a workload."""
        i = self.index(workload)
        return None if i is None else [int(v) for v in self.demand[i]]

    def placement_cost(
        self, workload: str, placement: Mapping[Location, int], periods: int
    ) -> float:
        """Compute cost of ``placement`` over the first ``periods`` periods (NaN: unknown).

        Priced with the plan's own replica costs, before commitments and ongoing costs: the
        figure a bill at those prices shows for the replicas alone.
        """
        i = self.index(workload)
        if i is None or periods > self.horizon:
            return math.nan
        total = 0.0
        for location, replicas in placement.items():
            if replicas <= 0:
                continue
            if location not in self.locations:
                return math.nan
            row = self.cost[i, self.locations.index(location), :periods]
            if np.isnan(row).any():
                return math.nan
            total += replicas * float(row.sum())
        return total

    def unit_costs(self) -> dict[str, float]:
        """First-period cost of one replica per ``workload@cloud:region`` (priced ones only)."""
        out: dict[str, float] = {}
        for i, w in enumerate(self.workloads):
            for j, loc in enumerate(self.locations):
                value = self.cost[i, j, 0] if self.horizon else math.nan
                if not math.isnan(value):
                    out[f"{w.name}@{loc.key}"] = float(value)
        return out

    def gravity(self) -> np.ndarray:
        """``[W, L, T]`` egress to reach the workload's data, per replica-period.

        The workload's ``data_gb`` per period, priced from its data's location to each location
        (:class:`Egress`), shared by the replicas that serve the period's demand: a replica at
        ``l`` carries ``1 / d[w, t]`` of the traffic.
        """
        W, L, T = len(self.workloads), len(self.locations), self.horizon
        out = np.zeros((W, L, T))
        for i, w in enumerate(self.workloads):
            if w.data_location is None or w.data_gb <= 0:
                continue
            rates = np.array([self.egress.rate(w.data_location, loc) for loc in self.locations])
            per_replica = w.data_gb / np.maximum(1.0, self.demand[i].astype("float64"))
            out[i] = rates[:, None] * per_replica[None, :]
        return out

    def preference_cost(self) -> np.ndarray:
        """``[W, L, T]`` the soft preference cost per replica-period (``Workload.preference``)."""
        W, L, T = len(self.workloads), len(self.locations), self.horizon
        out = np.zeros((W, L, T))
        col = {loc: j for j, loc in enumerate(self.locations)}
        for i, w in enumerate(self.workloads):
            for loc, value in w.preference:
                if loc in col:
                    out[i, col[loc], :] = value
        return out

    def unit_cost(self) -> np.ndarray:
        """``[W, L, T]`` what the objective charges per replica-period: compute + ongoing.

        ``NaN`` where the location is unavailable. Commitments cover the compute part only.
        """
        out: np.ndarray = self.cost + self.gravity() + self.preference_cost()
        return out

    @property
    def horizon(self) -> int:
        """Number of periods."""
        return int(self.demand.shape[1])

    def period_starts(self) -> list[datetime]:
        """Start of each period."""
        step = timedelta(hours=period_hours(self.period))
        return [self.period_start + i * step for i in range(self.horizon)]

    def allowed(self) -> np.ndarray:
        """``[W, L]``: the workload may run there (residency) and it has a price there.

        A fresh copy (callers may change it) of a mask computed once per problem: callers ask
        for it per workload, and recomputing it each time made the guardrails quadratic in the
        number of workloads (most of the time of a 1,000-workload plan).
        """
        return self._allowed.copy()

    @functools.cached_property
    def _allowed(self) -> np.ndarray:
        priced = ~np.all(np.isnan(self.cost), axis=2)
        out = np.zeros_like(priced)
        for i, w in enumerate(self.workloads):
            if w.allowed:
                mask = np.array([loc in w.allowed for loc in self.locations], dtype=bool)
            else:
                mask = np.ones(len(self.locations), dtype=bool)
            out[i] = mask & priced[i]
        return np.asarray(out, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``NaN`` as ``null``)."""
        return {
            "version": PLANNER_VERSION,
            # Through JSON so the dict equals its own round trip (tuples become lists).
            "workloads": json.loads(json.dumps([w.to_dict() for w in self.workloads])),
            "locations": [loc.key for loc in self.locations],
            "period_start": self.period_start.isoformat(),
            "period": self.period,
            "demand": self.demand.astype(int).tolist(),
            "cost": _arr_to_list(self.cost),
            "cost_lower": _arr_to_list(self.cost_lower),
            "cost_upper": _arr_to_list(self.cost_upper),
            "current": self.current.astype(int).tolist(),
            "confidence": self.confidence.tolist(),
            "quotas": [q.to_dict() for q in self.quotas],
            "budgets": [b.to_dict() for b in self.budgets],
            "commitments": [c.to_dict() for c in self.commitments],
            "currency": self.currency,
            "kind": self.kind.ravel().tolist(),
            "forecast_price": self.forecast_price.ravel().tolist(),
            "confidence_source": list(self.confidence_source),
            "egress": self.egress.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """Inverse of :meth:`to_dict`."""
        shape = (len(data["workloads"]), len(data["locations"]), -1)
        kind = np.array(data.get("kind", []), dtype=object)
        priced_by_fc = np.array(data.get("forecast_price", []), dtype=bool)
        return cls(
            workloads=tuple(Workload.from_dict(w) for w in data["workloads"]),
            locations=tuple(Location.parse(s) for s in data["locations"]),
            period_start=datetime.fromisoformat(data["period_start"]),
            period=str(data["period"]),
            demand=np.array(data["demand"], dtype=np.int64).reshape(len(data["workloads"]), -1),
            cost=_list_to_arr(data["cost"]).reshape(shape),
            cost_lower=_list_to_arr(data["cost_lower"]).reshape(shape),
            cost_upper=_list_to_arr(data["cost_upper"]).reshape(shape),
            current=np.array(data["current"], dtype=np.int64).reshape(
                len(data["workloads"]), len(data["locations"])
            ),
            confidence=np.array(data["confidence"], dtype="float64"),
            quotas=tuple(Quota.from_dict(q) for q in data.get("quotas", ())),
            budgets=tuple(Budget.from_dict(b) for b in data.get("budgets", ())),
            commitments=tuple(Commitment.from_dict(c) for c in data.get("commitments", ())),
            currency=str(data.get("currency", "USD")),
            kind=kind.reshape(shape) if kind.size else kind,
            forecast_price=priced_by_fc.reshape(shape) if priced_by_fc.size else priced_by_fc,
            confidence_source=tuple(str(v) for v in data.get("confidence_source", ())),
            egress=Egress.from_dict(data.get("egress") or {}),
        )

    def digest(self) -> str:
        """Content digest of the problem (the plan id is its prefix)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Inputs -> problem


def demand_replicas(forecast: pd.DataFrame, quantile: float) -> np.ndarray:
    """Replicas needed per forecast row at ``quantile``.

    ``yhat`` is the median (quantile 0.5). The row's interval ``[yhat_lower, yhat_upper]`` is
    the central ``interval`` mass, so ``yhat_upper`` is the quantile ``(1 + interval) / 2``. A
    quantile ``q`` above 0.5 is read on a normal scale between the two:
    ``yhat + (yhat_upper - yhat) * z(q) / z((1 + interval) / 2)`` (and symmetrically towards
    ``yhat_lower`` below 0.5), so it equals the bound at the bound's quantile and extrapolates
    beyond it. The forecast is in replicas already (``series.demand_series`` counts instance-hours
    per period), so values are only rounded up (a partial replica is a replica); negative
    values become zero.
    """
    if not 0.0 < quantile < 1.0:
        raise PlanError(f"quantile must be in (0, 1), got {quantile}")
    yhat = forecast["yhat"].to_numpy(dtype="float64")
    interval = forecast["interval"].to_numpy(dtype="float64")
    z_bound = norm.ppf((1.0 + interval) / 2.0)
    ratio = norm.ppf(quantile) / z_bound
    if quantile >= 0.5:
        spread = forecast["yhat_upper"].to_numpy(dtype="float64") - yhat
    else:
        spread = yhat - forecast["yhat_lower"].to_numpy(dtype="float64")
    value = yhat + spread * ratio
    return np.asarray(np.maximum(np.ceil(value - 1e-9), 0.0))


def _rows_of(forecast: pd.DataFrame) -> dict[str, np.ndarray]:
    """Workload name -> positions of its rows: one pass (a mask per workload is quadratic)."""
    groups = forecast.groupby("unique_id", sort=False).indices
    return {str(k): np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def _infer_period(ds: pd.DatetimeIndex) -> str:
    if len(ds) < 2:
        return "1D"
    steps = pd.Series(np.diff(ds.to_numpy())).value_counts()
    step = pd.Timedelta(steps.index[0])
    hours = step / pd.Timedelta(hours=1)
    if hours % 24 == 0:
        return f"{int(hours // 24)}D"
    if hours == int(hours):
        return f"{int(hours)}h"
    return f"{int(step / pd.Timedelta(minutes=1))}min"


def _confidence(
    names: Sequence[str], forecast: pd.DataFrame, accuracy: pd.DataFrame | None
) -> tuple[np.ndarray, tuple[str, ...], list[str]]:
    notes: list[str] = []
    by_name: dict[str, float] = {}
    if accuracy is not None:
        acc = ACCURACY.validate(accuracy)
        bad = acc[(acc["confidence"] < 0) | (acc["confidence"] > 1)]
        if not bad.empty:
            raise SchemaError(
                "accuracy",
                [
                    Issue("must be in [0, 1]", column="confidence", row=int(i) + 1)
                    for i in bad.index
                ],
            )
        means = acc.groupby("unique_id")["confidence"].mean()
        by_name = {str(k): float(v) for k, v in means.items()}
    out = np.zeros(len(names))
    derived: list[str] = []
    at = _rows_of(forecast)
    for i, name in enumerate(names):
        if name in by_name:
            out[i] = float(by_name[name])
            continue
        rows = forecast.iloc[at.get(name, np.zeros(0, dtype=np.int64))]
        if rows.empty:
            out[i] = 0.0
            continue
        half = (rows["yhat_upper"] - rows["yhat_lower"]).to_numpy() / 2.0
        level = np.maximum(np.abs(rows["yhat"].to_numpy()), 1e-9)
        out[i] = float(np.clip(1.0 - np.mean(half / level), 0.0, 1.0))
        derived.append(name)
    if derived:
        shown = ", ".join(derived[:5]) + (" ..." if len(derived) > 5 else "")
        notes.append(
            f"no backtest accuracy for {len(derived)} workload(s) ({shown}): confidence "
            "derived from the width of their forecast interval"
        )
    source = tuple(
        "backtest" if n in by_name else ("interval" if n in derived else "none") for n in names
    )
    return out, source, notes


def build_problem(
    demand: pd.DataFrame,
    catalog: Catalog,
    workloads: Sequence[Workload],
    current: Sequence[Placement] = (),
    *,
    quantile: float = 0.8,
    accuracy: pd.DataFrame | None = None,
    quotas: Sequence[Quota] = (),
    budgets: Sequence[Budget] = (),
    commitments: Sequence[Commitment] = (),
    horizon: int | None = None,
    start: datetime | None = None,
    period: str | None = None,
    egress: Egress | None = None,
) -> tuple[Problem, list[str]]:
    """Turn frames and specs into a :class:`Problem` (and notes about what was assumed).

    The demand forecast is in replicas (what the loop's demand series count); ``egress``
    prices data gravity (default: :class:`Egress` list prices).
    """
    notes: list[str] = []
    if not workloads:
        raise PlanError("no workloads to plan")
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PlanError(f"workload names must be unique: {', '.join(dup)}", workload=dup[0])
    for w in workloads:
        _check_workload(w)
    fc = validate_forecast(demand)
    unknown = sorted(set(fc["unique_id"]) - set(names))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        notes.append(f"forecast series without a workload spec ignored: {shown}")
        fc = fc[fc["unique_id"].isin(names)]
    if start is not None:
        fc = fc[fc["ds"] >= pd.Timestamp(start)]
    if fc.empty:
        raise PlanError("the demand forecast has no rows for the workloads to plan")
    all_ds = pd.DatetimeIndex(sorted(fc["ds"].unique()))
    period = period or _infer_period(all_ds)
    step = pd.Timedelta(hours=period_hours(period))
    first = all_ds[0]
    n_t = round((all_ds[-1] - first) / step) + 1
    if horizon is not None:
        if horizon < 1:
            raise PlanError(f"horizon must be at least 1 period, got {horizon}")
        n_t = min(n_t, horizon)
    periods = [first + i * step for i in range(n_t)]
    fc = fc[fc["ds"] < periods[-1] + step]

    locations = set(catalog.locations)
    for p in current:
        locations.add(p.location)
    for w in workloads:
        locations.update(w.allowed)
    locs = tuple(sorted(locations))
    col = {loc: j for j, loc in enumerate(locs)}
    n_w, n_l = len(workloads), len(locs)

    d = np.zeros((n_w, n_t), dtype=np.int64)
    cur = np.zeros((n_w, n_l), dtype=np.int64)
    w_index = {name: i for i, name in enumerate(names)}
    for p in current:
        if p.workload not in w_index:
            raise PlanError(
                f"current placement names workload {p.workload!r}, which has no spec",
                workload=p.workload,
            )
        if p.replicas < 0:
            raise PlanError(
                f"current placement of {p.workload!r} at {p.location} is negative",
                workload=p.workload,
            )
        cur[w_index[p.workload], col[p.location]] += p.replicas

    issues: list[Issue] = []
    slot = ((fc["ds"] - first) / step).to_numpy(dtype="float64")
    at = _rows_of(fc)
    for i, w in enumerate(workloads):
        mask = np.zeros(len(fc), dtype=bool)
        mask[at.get(w.name, [])] = True
        if not mask.any():
            d[i] = cur[i].sum()
            notes.append(
                f"{w.name}: no demand forecast; its current {int(cur[i].sum())} replica(s) "
                "are kept as demand"
            )
            continue
        rows = fc[mask]
        reps = demand_replicas(rows, quantile)
        seen = np.zeros(n_t, dtype=bool)
        for s, r in zip(slot[mask], reps, strict=True):
            k = round(float(s))
            if abs(s - k) > 1e-6:
                issues.append(
                    Issue(
                        f"is not on the {period} period grid starting {first}",
                        column="ds",
                        value=f"{w.name}",
                    )
                )
                break
            if seen[k]:
                issues.append(
                    Issue("duplicated (unique_id, ds)", column="ds", value=f"{w.name} @ {k}")
                )
                break
            seen[k] = True
            d[i, k] = int(r)
        missing = np.flatnonzero(~seen)
        if len(missing):
            issues.append(
                Issue(
                    f"no forecast for period(s) starting {periods[int(missing[0])]}"
                    + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""),
                    column="ds",
                    value=w.name,
                )
            )
    if issues:
        raise SchemaError("forecast", issues)

    shape = (n_w, n_l, n_t)
    cost = np.full(shape, np.nan)
    lower = np.full(shape, np.nan)
    upper = np.full(shape, np.nan)
    kind = np.full(shape, "", dtype=object)
    from_fc = np.zeros(shape, dtype=bool)
    for i, w in enumerate(workloads):
        rc = catalog.replica_cost(
            vcpus=w.vcpus,
            memory_gib=w.memory_gib,
            spot=w.spot,
            periods=periods,
            period=period,
            locations=locs,
        )
        cost[i], lower[i], upper[i] = rc.cost, rc.lower, rc.upper
        kind[i], from_fc[i] = rc.kind, rc.forecast
    confidence, source, conf_notes = _confidence(names, fc, accuracy)
    notes.extend(conf_notes)
    priced = ~np.isnan(cost)
    for j, loc in enumerate(locs):
        late = ~priced[:, j, 0] & priced[:, j, :].any(axis=1)
        if late.any():
            t = int(np.argmax(priced[:, j, :].any(axis=0)))
            notes.append(
                f"{loc.key} has no price before {periods[t]:%Y-%m-%d %H:%M}: it is unavailable "
                "until then (prices are never back-filled)"
            )
    age = catalog.age(periods[0].to_pydatetime())
    if age > timedelta(hours=2 * period_hours(period)):
        notes.append(f"prices are {_human_age(age)} old at the start of the plan")
    for q in quotas:
        if q.location not in col:
            notes.append(f"quota at {q.location} applies to no priced or current location")
    problem = Problem(
        workloads=tuple(workloads),
        locations=locs,
        period_start=periods[0].to_pydatetime(),
        period=period,
        demand=d,
        cost=cost,
        cost_lower=lower,
        cost_upper=upper,
        current=cur,
        confidence=confidence,
        quotas=tuple(quotas),
        budgets=tuple(budgets),
        commitments=tuple(commitments),
        currency=catalog.currency,
        kind=kind,
        forecast_price=from_fc,
        confidence_source=source,
        egress=egress or Egress(),
    )
    return problem, notes


def _check_workload(w: Workload) -> None:
    problems = []
    if w.vcpus <= 0 or w.memory_gib <= 0:
        problems.append("vcpus and memory_gib must be positive")
    if not 0 < w.max_share <= 1:
        problems.append(f"max_share must be in (0, 1], got {w.max_share}")
    if w.min_locations < 1:
        problems.append(f"min_locations must be at least 1, got {w.min_locations}")
    if w.max_change is not None and w.max_change < 0:
        problems.append(f"max_change must not be negative, got {w.max_change}")
    if w.move_cost < 0:
        problems.append(f"move_cost must not be negative, got {w.move_cost}")
    if not (math.isfinite(w.data_gb) and w.data_gb >= 0):
        problems.append(f"data_gb must be a finite amount >= 0, got {w.data_gb}")
    if w.data_gb > 0 and w.data_location is None:
        problems.append("data_gb needs a data_location")
    for loc, value in w.preference:
        if not math.isfinite(value):
            problems.append(f"preference at {loc} must be a finite amount, got {value}")
    if problems:
        raise PlanError(f"workload {w.name!r}: " + "; ".join(problems), workload=w.name)


def _human_age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"


# --------------------------------------------------------------------------------------------
# Evaluation (the same cost for plan and baseline)


def coverage(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the commitments cover of a schedule ``x`` ``[W, L, T]``, optimally for that ``x``.

    Regional vCPU commitments cover the dearest vCPUs first; then each savings plan covers what
    is left of the spend in its scope, regional plans before cloud-wide ones. Given ``x`` this
    maximises the coverage (a vCPU more under a reserved commitment can take at most its own
    value off what a savings plan covers), so it is the optimal value of the MILP's commitment
    columns for ``x``: the planner's MIP starts and plan checks fill them in from here.

    Returns:
        ``(spend, vcpus, covered)``: spend per replica cell net of every commitment
        ``[W, L, T]``; vCPUs covered by regional commitments ``[W, L, T]``; spend covered by
        each savings plan (``problem.commitments`` with an amount, in order) per period
        ``[J, T]``. Savings-plan coverage is taken off the spend in proportion to each cell's
        spend in scope.
    """
    T = x.shape[2]
    cost = np.nan_to_num(problem.cost[:, :, :T], nan=0.0)
    vc = np.array([w.vcpus for w in problem.workloads])
    spend = cost * x  # [W, L, T]
    vcpus = np.zeros(x.shape)
    starts = problem.period_starts()[:T]
    for j, loc in enumerate(problem.locations):
        for t in range(T):
            cap = sum(
                cm.vcpus
                for cm in problem.commitments
                if cm.vcpus > 0 and cm.covers(loc) and cm.active(starts[t])
            )
            if cap <= 0:
                continue
            rate = cost[:, j, t] / vc
            order = np.argsort(-rate, kind="stable")
            need = vc[order] * x[order, j, t]
            used = np.clip(cap - (np.cumsum(need) - need), 0.0, need)  # dearest first
            vcpus[order, j, t] = used
            spend[order, j, t] -= used * rate[order]
    sps = [cm for cm in problem.commitments if cm.amount > 0]
    covered = np.zeros((len(sps), T))
    regional_first = sorted(range(len(sps)), key=lambda k: sps[k].region is None)
    for t in range(T):
        for k in regional_first:
            cm = sps[k]
            if not cm.active(starts[t]):
                continue
            scope = np.array([cm.covers(loc) for loc in problem.locations], dtype=bool)
            in_scope = spend[:, scope, t]
            total = float(in_scope.sum())
            if total <= 0:
                continue
            covered[k, t] = min(cm.amount, total)
            spend[:, scope, t] = in_scope * (1.0 - covered[k, t] / total)
    return spend, vcpus, covered


def evaluate(problem: Problem, x: np.ndarray, *, ongoing: bool = True) -> np.ndarray:
    """Cost per workload of a schedule ``[W, L, T]``: replicas, moves, minus commitments.

    With ``ongoing`` the ongoing costs (data gravity, preference) are added; commitments never
    cover them, and budgets count without them (they are not the budgeted cloud's compute).
    What the commitments cover is :func:`coverage`'s (the optimum for ``x``).
    """
    T = x.shape[2]
    mv = np.array([w.move_cost for w in problem.workloads])
    prev = np.concatenate([problem.current[:, :, None].astype("float64"), x[:, :, :-1]], axis=2)
    added = np.maximum(0.0, x - prev)
    spend, _, _ = coverage(problem, x)
    result: np.ndarray = spend.sum(axis=(1, 2)) + (added.sum(axis=(1, 2)) * mv)
    if ongoing:
        extra = (problem.gravity() + problem.preference_cost())[:, :, :T]
        result = result + (extra * x).sum(axis=(1, 2))
    return result


def baseline(problem: Problem, plan_x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Never move: current locations, scaled in proportion to the demand of each period.

    Workloads without a (priced) current placement have no such alternative: their baseline is
    the plan itself (returned as the second value).
    """
    W, T = plan_x.shape[0], plan_x.shape[2]
    out = plan_x.copy()
    own: list[int] = []
    for i in range(W):
        cur = problem.current[i].astype("float64")
        total = cur.sum()
        priced = ~np.isnan(problem.cost[i, :, :T]).any(axis=1)
        if total <= 0 or not np.all(priced[cur > 0]):
            own.append(i)
            continue
        counts = [int(v) for v in problem.current[i]]
        for t in range(T):
            out[i, :, t] = proportional(counts, int(problem.demand[i, t]))
    return out, own


def evaluate_cloud(problem: Problem, x: np.ndarray, cloud: str) -> float:
    """Net spend of ``x`` at one cloud's locations over the horizon (budgets)."""
    mask = np.array([loc.cloud == cloud for loc in problem.locations])
    sub = x.copy()
    sub[:, ~mask, :] = 0
    return float(evaluate(problem, sub, ongoing=False).sum())
