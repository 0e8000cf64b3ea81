"""Place every workload's replicas across clouds and regions ahead of forecast spikes.

The planner solves one mixed-integer linear programme (the architecture page, "The plan") with
HiGHS through ``highspy``, then explains it, checks it against guardrails and
packs it into a :class:`~cloudbalance.models.Plan`.

Formulation
-----------
Workloads ``w``, locations ``l = (cloud, region)``, periods ``t = 1..T``. Given: demand ``d[w,t]``
in replicas (forecast at a chosen quantile, divided by ``demand_per_replica``, rounded up); cost
``c[w,l,t]`` of one replica for one period (:mod:`cloudbalance.catalog`); current placement
``x[w,l,0]``; move cost ``m_w`` per replica added; allowed locations ``A_w``; vCPUs ``v_w``.

Variables: ``x[w,l,t]`` integer >= 0 (only for ``l`` in ``A_w`` that have a price: residency is
enforced by the variable not existing); ``u[w,l,t] >= 0`` replicas added; ``y[w,l,t]`` binary
"location in use" (only for workloads with an HA minimum); ``r[w,l,t] >= 0`` vCPUs covered by a
regional commitment; ``s[j,t] >= 0`` spend covered by a savings-plan-like commitment ``j``.

```
minimise   sum c[w,l,t] x[w,l,t] + sum m_w u[w,l,t]
           - sum (c[w,l,t] / v_w) r[w,l,t] - sum s[j,t]          (paid-for capacity is free)
subject to sum_l x[w,l,t] >= d[w,t]                              (serve the forecast demand)
           u[w,l,t] >= x[w,l,t] - x[w,l,t-1]                     (what is added is what moves)
           sum_l u[w,l,t] <= floor(theta_w * max(1, D[w,t-1])) + g[w,t]     (change throttle)
           x[w,l,t] <= max(1, ceil(s_w * d[w,t]))                 (max share of one location)
           x[w,l,t] >= y[w,l,t], sum_l y[w,l,t] >= k_w            (HA, when k_w > 1)
           sum_w v_w x[w,l,t] <= quota[l]                        (vCPU quotas)
           sum over a cloud's l, t of the objective terms <= budget[cloud]   (budgets, horizon)
           r[w,l,t] <= v_w x[w,l,t], sum_w r[w,l,t] <= C[l,t]     (reserved / committed-use vCPUs)
           s[j,t] <= S_j, s[j,t] <= covered spend in j's scope    (savings plans, per period)
```

Three choices deviate from a literal reading of the page, on purpose:

- ``g[w,t] = max(0, d[w,t] - d[w,t-1])`` (``d[w,0]`` = current replicas): replicas added to serve
  *growing* demand do not count against the throttle, which limits relocation, not growth; a
  literal throttle would make every demand increase above ``theta`` infeasible.
- The throttle is measured on the previous period's demand ``D[w,t-1]`` (the current replicas for
  period 1), not on the previous period's replicas; and the share on the period's demand,
  rounded up to a whole replica, not on the replicas placed. Both are equal whenever the plan
  places exactly the demand (the usual case: extra replicas cost money), and they turn rows with
  fractional coefficients on variables (``theta * x``, ``s * x``) into cardinality limits and
  plain bounds: with them HiGHS stalled on 200 workloads; without them it solves 500 in seconds.

Only the first period is written to Git (receding horizon); the later periods are why the plan
moves early and gradually ahead of a spike when a throttle or move costs make a late move dear.

Baseline, saving, confidence and guardrails
-------------------------------------------
The baseline ("never move") keeps each workload in its current locations, scaled in proportion
to serve the same demand; it is priced with the same costs, move costs and commitments. The
saving of a workload is its baseline cost minus its planned cost over the horizon (move costs
included). Its uncertainty is ``(1 - confidence_w) * stake_w``, where ``stake_w`` is the cost of
the replica-periods the plan places where the baseline would not (what is lost if the forecast
behind the move is wrong), plus the half-width of the price forecast's interval on every
replica-period placed differently from the baseline. A workload whose saving does not exceed its
uncertainty keeps its baseline first period (its moves are not made) and the rest is
re-optimised: with confidence 0.9 a move must save more than 10% of what it puts at stake.
Confidence per workload is the ``confidence`` column of the forecast backtests (accuracy frame);
without one it is derived from the width of the forecast interval. If the plan's total saving is
below ``min_saving`` (currency) or ``min_saving_pct`` (percent of the baseline), no relocation is
written: the plan holds the current locations (scaled to the demand).

Infeasibility
-------------
No assert, no silent relaxation: when the constraints cannot all hold, the planner finds the
first period where they fail (the problem cut after period ``t`` is a relaxation, so a bisection
finds it), then a minimal set of conflicting constraint groups by a deletion filter (drop one
group, keep it dropped if the rest is still infeasible), and raises
:class:`~cloudbalance.exceptions.InfeasiblePlanError` naming each one, the workloads and period,
and a suggestion sized from a plan that exists once that group is lifted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.stats import norm

from cloudbalance.catalog import Catalog, load_catalog, period_hours
from cloudbalance.exceptions import InfeasiblePlanError, Issue, PlanError, SchemaError
from cloudbalance.models import Location, Move, Placement, Plan, Workload
from cloudbalance.schema import ACCURACY, validate_forecast

__all__ = [
    "Budget",
    "Commitment",
    "PlanProblem",
    "Quota",
    "demand_replicas",
    "plan",
    "reproduce_plan",
    "solve_problem",
]

_EPS = 1e-6
_PLANNER_VERSION = 1


@dataclass(frozen=True)
class Quota:
    """At most ``vcpus`` vCPUs of planned workloads at one location, in every period."""

    location: Location
    vcpus: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"location": self.location.key, "vcpus": self.vcpus}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quota:
        """Inverse of :meth:`to_dict`."""
        return cls(Location.parse(str(data["location"])), float(data["vcpus"]))


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


def _arr_to_list(values: np.ndarray) -> Any:
    if values.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in values.ravel().tolist()]
    return values.ravel().tolist()


def _list_to_arr(values: Any) -> np.ndarray:
    return np.array(values, dtype="float64")


@dataclass(frozen=True)
class PlanProblem:
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

    @property
    def horizon(self) -> int:
        """Number of periods."""
        return int(self.demand.shape[1])

    def period_starts(self) -> list[datetime]:
        """Start of each period."""
        step = timedelta(hours=period_hours(self.period))
        return [self.period_start + i * step for i in range(self.horizon)]

    def allowed(self) -> np.ndarray:
        """``[W, L]``: the workload may run there (residency) and it has a price there."""
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
            "version": _PLANNER_VERSION,
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanProblem:
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
        )

    def digest(self) -> str:
        """Content digest of the problem (the plan id is its prefix)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Inputs -> problem


def demand_replicas(
    forecast: pd.DataFrame, quantile: float, demand_per_replica: float = 1.0
) -> np.ndarray:
    """Replicas needed per forecast row at ``quantile``.

    ``yhat`` is the median (quantile 0.5). The row's interval ``[yhat_lower, yhat_upper]`` is
    the central ``interval`` mass, so ``yhat_upper`` is the quantile ``(1 + interval) / 2``. A
    quantile ``q`` above 0.5 is read on a normal scale between the two:
    ``yhat + (yhat_upper - yhat) * z(q) / z((1 + interval) / 2)`` (and symmetrically towards
    ``yhat_lower`` below 0.5), so it equals the bound at the bound's quantile and extrapolates
    beyond it. Values are divided by ``demand_per_replica`` and rounded up (a partial replica
    is a replica); negative values become zero.
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
    return np.asarray(np.maximum(np.ceil(value / demand_per_replica - 1e-9), 0.0))


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
) -> tuple[np.ndarray, list[str]]:
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
    for i, name in enumerate(names):
        if name in by_name:
            out[i] = float(by_name[name])
            continue
        rows = forecast[forecast["unique_id"] == name]
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
    return out, notes


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
) -> tuple[PlanProblem, list[str]]:
    """Turn frames and specs into a :class:`PlanProblem` (and notes about what was assumed)."""
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
    for i, w in enumerate(workloads):
        mask = (fc["unique_id"] == w.name).to_numpy()
        if not mask.any():
            d[i] = cur[i].sum()
            notes.append(
                f"{w.name}: no demand forecast; its current {int(cur[i].sum())} replica(s) "
                "are kept as demand"
            )
            continue
        rows = fc[mask]
        reps = demand_replicas(rows, quantile, w.demand_per_replica)
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
    confidence, conf_notes = _confidence(names, fc, accuracy)
    notes.extend(conf_notes)
    age = catalog.age(periods[0].to_pydatetime())
    if age > timedelta(hours=2 * period_hours(period)):
        notes.append(f"prices are {_human_age(age)} old at the start of the plan")
    for q in quotas:
        if q.location not in col:
            notes.append(f"quota at {q.location} applies to no priced or current location")
    problem = PlanProblem(
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
    if w.demand_per_replica <= 0:
        problems.append(f"demand_per_replica must be positive, got {w.demand_per_replica}")
    if problems:
        raise PlanError(f"workload {w.name!r}: " + "; ".join(problems), workload=w.name)


def _human_age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"


# --------------------------------------------------------------------------------------------
# The MILP


Group = tuple[str, str]  # (kind, subject): ("quota", "aws:us-east-1"), ("throttle", "api")


@dataclass
class _Model:
    c: np.ndarray
    integrality: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    a: Any
    row_lb: np.ndarray
    row_ub: np.ndarray
    pw: np.ndarray  # workload of each pair
    pl: np.ndarray  # location of each pair
    n_t: int


@dataclass
class _Rows:
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    lb: list[np.ndarray] = field(default_factory=list)
    ub: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(
        self,
        n_rows: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray | float,
        lb: np.ndarray | float,
        ub: np.ndarray | float,
    ) -> None:
        if n_rows == 0:
            return
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype="float64"), np.shape(cols)))
        self.lb.append(np.broadcast_to(np.asarray(lb, dtype="float64"), (n_rows,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, dtype="float64"), (n_rows,)))
        self.n += n_rows


def _groups(problem: PlanProblem) -> list[Group]:
    out: list[Group] = []
    for w in problem.workloads:
        if w.allowed:
            out.append(("residency", w.name))
        if w.max_change is not None:
            out.append(("throttle", w.name))
        if w.max_share < 1:
            out.append(("share", w.name))
        if w.min_locations > 1:
            out.append(("ha", w.name))
    out += [("quota", q.location.key) for q in problem.quotas]
    out += [("budget", b.cloud) for b in problem.budgets]
    return out


def _build(
    problem: PlanProblem,
    *,
    n_t: int | None = None,
    disabled: frozenset[Group] = frozenset(),
    only: Sequence[int] | None = None,
    pinned: Mapping[int, np.ndarray] | None = None,
) -> _Model:
    """Assemble the MILP (see the module docstring) for periods ``0..n_t-1``.

    Args:
        problem: The data.
        n_t: Cut the horizon after this many periods (diagnosis).
        disabled: Constraint groups left out (diagnosis).
        only: Plan only these workloads (diagnosis); shared constraints see only them.
        pinned: Workload index -> ``[L]`` replicas fixed in the first period (guardrails).
    """
    T = problem.horizon if n_t is None else n_t
    W, L = problem.demand.shape[0], len(problem.locations)
    allowed = problem.allowed()
    for i, w in enumerate(problem.workloads):
        if ("residency", w.name) in disabled:
            allowed[i] = ~np.all(np.isnan(problem.cost[i]), axis=1)
    d = problem.demand[:, :T]
    if only is not None:
        keep = np.zeros(W, dtype=bool)
        keep[list(only)] = True
        allowed &= keep[:, None]
        d = d * keep[:, None]
    pw, pl = np.nonzero(allowed)
    P = len(pw)
    cost = problem.cost[pw, pl, :T]  # [P, T]
    avail = ~np.isnan(cost)
    cost = np.nan_to_num(cost, nan=0.0)
    vc = np.array([w.vcpus for w in problem.workloads])
    mv = np.array([w.move_cost for w in problem.workloads])
    cur = problem.current
    starts = problem.period_starts()[:T]

    # Variable blocks.
    n_x = P * T
    x0, u0 = 0, n_x
    ha_w = [
        i
        for i, w in enumerate(problem.workloads)
        if w.min_locations > 1 and ("ha", w.name) not in disabled and np.any(pw == i)
    ]
    ha_pairs = np.flatnonzero(np.isin(pw, ha_w))
    y0 = 2 * n_x
    n_y = len(ha_pairs) * T
    # Regional vCPU commitments: capacity C[l, t].
    cap = np.zeros((L, T))
    for cm in problem.commitments:
        if cm.vcpus > 0:
            for j, loc in enumerate(problem.locations):
                if cm.covers(loc):
                    for t in range(T):
                        if cm.active(starts[t]):
                            cap[j, t] += cm.vcpus
    ri_pairs = np.flatnonzero(cap[pl].sum(axis=1) > 0) if P else np.array([], dtype=np.int64)
    r0 = y0 + n_y
    n_r = len(ri_pairs) * T
    sps = [cm for cm in problem.commitments if cm.amount > 0]
    s0 = r0 + n_r
    n_s = len(sps) * T
    n_var = s0 + n_s

    c = np.zeros(n_var)
    c[x0:u0] = cost.ravel()
    c[u0 : u0 + n_x] = np.repeat(mv[pw], T)
    ri_rate = np.zeros((len(ri_pairs), T))
    if n_r:
        ri_rate = cost[ri_pairs] / vc[pw[ri_pairs]][:, None]
        c[r0 : r0 + n_r] = -ri_rate.ravel()
    c[s0:] = -1.0

    integrality = np.zeros(n_var, dtype=np.int64)
    integrality[x0:u0] = 1
    integrality[y0 : y0 + n_y] = 1
    lb = np.zeros(n_var)
    ub = np.full(n_var, np.inf)
    ub[x0:u0] = np.where(avail, np.inf, 0.0).ravel()
    ub[y0 : y0 + n_y] = 1.0
    for j, cm in enumerate(sps):
        for t in range(T):
            ub[s0 + j * T + t] = cm.amount if cm.active(starts[t]) else 0.0

    pairs_t = np.arange(n_x)
    p_of = pairs_t // T
    t_of = pairs_t % T
    rows = _Rows()

    # Demand: sum_l x[w,l,t] >= d[w,t].
    rows.add(W * T, pw[p_of] * T + t_of, x0 + pairs_t, 1.0, d.ravel(), np.inf)

    # u[p,t] - x[p,t] + x[p,t-1] >= 0 (t=0: >= -current).
    prev = t_of > 0
    rows.add(
        n_x,
        np.concatenate([pairs_t, pairs_t, pairs_t[prev]]),
        np.concatenate([u0 + pairs_t, x0 + pairs_t, x0 + pairs_t[prev] - 1]),
        np.concatenate([np.ones(n_x), -np.ones(n_x), np.ones(int(prev.sum()))]),
        np.where(t_of == 0, -cur[pw[p_of], pl[p_of]], 0.0),
        np.inf,
    )

    for i, w in enumerate(problem.workloads):
        mine = np.flatnonzero(pw == i)
        if len(mine) == 0:
            continue
        theta = w.max_change
        if theta is not None and ("throttle", w.name) not in disabled:
            rhs = _throttle_limit(theta, float(cur[i].sum()), d[i])
            cols = (u0 + mine[:, None] * T + np.arange(T)).ravel()
            rows.add(T, np.tile(np.arange(T), len(mine)), cols, 1.0, -np.inf, rhs)
        if w.max_share < 1 and ("share", w.name) not in disabled:
            most = _share_cap(w.max_share, d[i])
            for p in mine:
                block = slice(x0 + p * T, x0 + (p + 1) * T)
                ub[block] = np.minimum(ub[block], most)
    if pinned:
        for i, reps in pinned.items():
            for p in np.flatnonzero(pw == i):
                if reps.ndim == 1:  # first period only
                    lb[x0 + p * T] = ub[x0 + p * T] = float(reps[pl[p]])
                else:  # every period
                    block = slice(x0 + p * T, x0 + (p + 1) * T)
                    lb[block] = ub[block] = reps[pl[p], :T]
    # HA: x - y >= 0 ; sum_l y >= k.
    if n_y:
        hp = np.repeat(ha_pairs, T)
        ht = np.tile(np.arange(T), len(ha_pairs))
        yk = np.arange(n_y)
        rows.add(
            n_y,
            np.concatenate([yk, yk]),
            np.concatenate([x0 + hp * T + ht, y0 + yk]),
            np.concatenate([np.ones(n_y), -np.ones(n_y)]),
            0.0,
            np.inf,
        )
        ha_index = {i: k for k, i in enumerate(ha_w)}
        kmin = np.array([problem.workloads[i].min_locations for i in ha_w], dtype="float64")
        rows.add(
            len(ha_w) * T,
            np.array([ha_index[int(pw[p])] for p in hp]) * T + ht,
            y0 + yk,
            1.0,
            np.where(d[ha_w] >= 1, kmin[:, None], 0.0).ravel(),
            np.inf,
        )
    # Quotas: sum_w v_w x[w,l,t] <= Q[l] (the tightest quota of a location wins).
    limit: dict[int, float] = {}
    for q in problem.quotas:
        if ("quota", q.location.key) in disabled or q.location not in problem.locations:
            continue
        j = problem.locations.index(q.location)
        limit[j] = min(limit.get(j, math.inf), q.vcpus)
    for j, qv in limit.items():
        at = np.flatnonzero(pl == j)
        if len(at) == 0:
            continue
        rows.add(
            T,
            np.tile(np.arange(T), len(at)),
            x0 + (at[:, None] * T + np.arange(T)).ravel(),
            np.repeat(vc[pw[at]], T),
            -np.inf,
            qv,
        )
    # Commitments (vCPUs): r <= v x ; sum_w r[., l, t] <= C[l, t].
    if n_r:
        rk = np.arange(n_r)
        rp = np.repeat(ri_pairs, T)
        rt = np.tile(np.arange(T), len(ri_pairs))
        rows.add(
            n_r,
            np.concatenate([rk, rk]),
            np.concatenate([r0 + rk, x0 + rp * T + rt]),
            np.concatenate([np.ones(n_r), -vc[pw[rp]]]),
            -np.inf,
            0.0,
        )
        loc_rows = {int(j): k for k, j in enumerate(sorted(set(pl[ri_pairs].tolist())))}
        rows.add(
            len(loc_rows) * T,
            np.array([loc_rows[int(pl[p])] for p in rp]) * T + rt,
            r0 + rk,
            1.0,
            -np.inf,
            np.array([cap[j, t] for j in sorted(loc_rows) for t in range(T)]),
        )

    def spend_terms(scope: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns/values of the net replica spend of the pairs in ``scope``, per period."""
        ps = np.flatnonzero(scope)
        cols = [x0 + (ps[:, None] * T + np.arange(T)).ravel()]
        vals = [cost[ps].ravel()]
        ts = [np.tile(np.arange(T), len(ps))]
        if n_r:
            sel = np.flatnonzero(scope[ri_pairs])
            cols.append(r0 + (sel[:, None] * T + np.arange(T)).ravel())
            vals.append(-ri_rate[sel].ravel())
            ts.append(np.tile(np.arange(T), len(sel)))
        return np.concatenate(cols), np.concatenate(vals), np.concatenate(ts)

    clouds = np.array([loc.cloud for loc in problem.locations], dtype=object)
    # Savings plans: s[j,t] <= spend in scope(j); sum over a cloud's plans <= the cloud's spend.
    for j, cm in enumerate(sps):
        scope = np.array([cm.covers(problem.locations[k]) for k in pl], dtype=bool)
        cols, vals, ts = spend_terms(scope)
        rows.add(
            T,
            np.concatenate([np.arange(T), ts]),
            np.concatenate([s0 + j * T + np.arange(T), cols]),
            np.concatenate([np.ones(T), -vals]),
            -np.inf,
            0.0,
        )
    for cloud in sorted({cm.cloud for cm in sps}):
        scope = clouds[pl] == cloud if P else np.zeros(0, dtype=bool)
        cols, vals, ts = spend_terms(scope)
        mine_sp = [j for j, cm in enumerate(sps) if cm.cloud == cloud]
        s_cols = np.concatenate([s0 + j * T + np.arange(T) for j in mine_sp])
        s_t = np.tile(np.arange(T), len(mine_sp))
        rows.add(
            T,
            np.concatenate([s_t, ts]),
            np.concatenate([s_cols, cols]),
            np.concatenate([np.ones(len(s_cols)), -vals]),
            -np.inf,
            0.0,
        )
    # Budgets over the horizon: replicas + moves - commitments at the cloud's locations.
    for b in problem.budgets:
        if ("budget", b.cloud) in disabled:
            continue
        scope = clouds[pl] == b.cloud if P else np.zeros(0, dtype=bool)
        cols, vals, _ = spend_terms(scope)
        ps = np.flatnonzero(scope)
        u_cols = u0 + (ps[:, None] * T + np.arange(T)).ravel()
        u_vals = np.repeat(mv[pw[ps]], T)
        mine_sp = [j for j, cm in enumerate(sps) if cm.cloud == b.cloud]
        s_cols = (
            np.concatenate([s0 + j * T + np.arange(T) for j in mine_sp])
            if mine_sp
            else np.array([], dtype=np.int64)
        )
        all_cols = np.concatenate([cols, u_cols, s_cols])
        all_vals = np.concatenate([vals, u_vals, -np.ones(len(s_cols))])
        rows.add(1, np.zeros(len(all_cols)), all_cols, all_vals, -np.inf, b.amount)

    if rows.n:
        a = coo_array(
            (np.concatenate(rows.vals), (np.concatenate(rows.rows), np.concatenate(rows.cols))),
            shape=(rows.n, n_var),
        ).tocsr()
        row_lb, row_ub = np.concatenate(rows.lb), np.concatenate(rows.ub)
    else:  # pragma: no cover - demand rows always exist
        a, row_lb, row_ub = None, np.zeros(0), np.zeros(0)
    return _Model(c, integrality, lb, ub, a, row_lb, row_ub, pw, pl, T)


def _throttle_limit(theta: float, current: float, demand: np.ndarray) -> np.ndarray:
    """Replicas a workload may add per period: ``floor(theta * max(1, D[t-1])) + growth``.

    ``D[0]`` is the current total and ``D[t]`` the demand of period ``t``; growth
    (``max(0, D[t] - D[t-1])``) is never throttled. Measuring the throttle on the previous
    demand rather than on the previous period's (variable) replicas keeps each row a plain
    cardinality limit, which HiGHS solves far faster than rows with a fractional ``theta``
    times variables.
    """
    prev = np.concatenate([[current], demand[:-1]]).astype("float64")
    growth = np.maximum(0.0, demand - prev)
    return np.asarray(np.floor(theta * np.maximum(1.0, prev) + 1e-9) + growth)


def _share_cap(share: float, demand: np.ndarray) -> np.ndarray:
    """Most replicas one location may hold per period: ``ceil(share * demand)`` (at least 1)."""
    return np.asarray(np.maximum(1.0, np.ceil(share * demand - 1e-9)))


@dataclass
class _Solution:
    status: int
    x: np.ndarray | None  # [W, L, T] replicas
    gap: float
    objective: float


def _solve(
    problem: PlanProblem, model: _Model, *, gap: float, time_limit: float, relax: bool = False
) -> _Solution:
    """Solve with HiGHS (``highspy``); status 0 optimal, 1 stopped early, 2 infeasible."""
    import highspy
    from highspy._core import _Highs  # the bare solver: no console banner, no callback threads

    W, L = problem.demand.shape[0], len(problem.locations)
    if len(model.c) == 0:
        ok = not np.any(problem.demand[:, : model.n_t] > 0)
        return _Solution(0 if ok else 2, np.zeros((W, L, model.n_t)) if ok else None, 0.0, 0.0)
    h = _Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", float(gap))
    h.setOptionValue("random_seed", 0)
    lp = highspy.HighsLp()
    a = model.a.tocsc()
    lp.num_col_ = len(model.c)
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = model.c
    lp.col_lower_ = model.lb
    lp.col_upper_ = model.ub
    lp.row_lower_ = model.row_lb
    lp.row_upper_ = model.row_ub
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    if not relax:
        integer, continuous = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
        lp.integrality_ = [integer if k else continuous for k in model.integrality.tolist()]
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kOptimal:
        code = 0
    elif status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        code = 2
    else:
        code = 1
    if code == 2 or info.primal_solution_status != 2:  # 2: a feasible solution is known
        return _Solution(code, None, math.inf, math.inf)
    values = np.asarray(h.getSolution().col_value)
    T = model.n_t
    xs = np.rint(values[: len(model.pw) * T]).reshape(len(model.pw), T)
    out = np.zeros((W, L, T))
    out[model.pw, model.pl, :] = xs
    mip_gap = 0.0 if relax else float(info.mip_gap)
    return _Solution(code, out, mip_gap, float(info.objective_function_value))


def _violated(problem: PlanProblem, x: np.ndarray, group: Group) -> bool:
    kind, subject = group
    if kind == "quota":
        loc = Location.parse(subject)
        if loc not in problem.locations:
            return False
        j = problem.locations.index(loc)
        limit = min(q.vcpus for q in problem.quotas if q.location == loc)
        vc = np.array([w.vcpus for w in problem.workloads])
        return bool((x[:, j, :] * vc[:, None]).sum(axis=0).max() > limit + 1e-6)
    amount = min(b.amount for b in problem.budgets if b.cloud == subject)
    return _evaluate_cloud(problem, x, subject) > amount + 1e-6


def _solve_lazy(
    problem: PlanProblem,
    *,
    gap: float,
    time_limit: float,
    pinned: Mapping[int, np.ndarray] | None = None,
) -> _Solution:
    """Solve with quotas and budgets added only once a solution breaks them.

    Dense budget rows and quota rows slow HiGHS down even when they do not bind. A solution of
    the problem without some of them that happens to satisfy them is optimal (within the gap)
    for the whole problem, since dropping constraints only lowers the optimum; so they are
    added, group by group, only when the current solution violates them. Exact, not a
    heuristic: the loop ends with every constraint satisfied or with a proof of infeasibility.
    """
    import time

    deadline = time.monotonic() + time_limit
    off = {g for g in _groups(problem) if g[0] in ("quota", "budget")}
    while True:
        left = max(1.0, deadline - time.monotonic())
        model = _build(problem, disabled=frozenset(off), pinned=pinned)
        sol = _solve(problem, model, gap=gap, time_limit=left)
        if sol.x is None or not off:
            return sol
        broken = {g for g in off if _violated(problem, sol.x, g)}
        if not broken:
            return sol
        off -= broken


def _feasible(problem: PlanProblem, **kwargs: Any) -> _Solution:
    model = _build(problem, **kwargs)
    return _solve(problem, model, gap=0.05, time_limit=30.0)


# --------------------------------------------------------------------------------------------
# Evaluation (the same cost for plan and baseline)


def _evaluate(problem: PlanProblem, x: np.ndarray) -> np.ndarray:
    """Cost per workload of a schedule ``[W, L, T]``: replicas, moves, minus commitments.

    Regional vCPU commitments cover the dearest vCPUs first (optimal for a fixed schedule);
    savings-plan spend is shared in proportion to each workload's spend in scope.
    """
    T = x.shape[2]
    cost = np.nan_to_num(problem.cost[:, :, :T], nan=0.0)
    mv = np.array([w.move_cost for w in problem.workloads])
    vc = np.array([w.vcpus for w in problem.workloads])
    prev = np.concatenate([problem.current[:, :, None].astype("float64"), x[:, :, :-1]], axis=2)
    added = np.maximum(0.0, x - prev)
    spend = cost * x  # [W, L, T]
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
            for i in np.argsort(-rate, kind="stable"):
                if cap <= 0:
                    break
                used = min(cap, vc[i] * x[i, j, t])
                spend[i, j, t] -= used * rate[i]
                cap -= used
    sps = sorted(
        (cm for cm in problem.commitments if cm.amount > 0), key=lambda c: c.region is None
    )
    for t in range(T):
        for cm in sps:
            if not cm.active(starts[t]):
                continue
            scope = np.array([cm.covers(loc) for loc in problem.locations], dtype=bool)
            in_scope = spend[:, scope, t]
            total = float(in_scope.sum())
            if total <= 0:
                continue
            covered = min(cm.amount, total)
            spend[:, scope, t] = in_scope * (1.0 - covered / total)
    result: np.ndarray = spend.sum(axis=(1, 2)) + (added.sum(axis=(1, 2)) * mv)
    return result


def _baseline(problem: PlanProblem, plan_x: np.ndarray) -> tuple[np.ndarray, list[int]]:
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
        share = cur / total
        for t in range(T):
            want = problem.demand[i, t]
            raw = share * want
            base = np.floor(raw)
            rest = int(want - base.sum())
            if rest > 0:
                order = np.argsort(-(raw - base), kind="stable")
                base[order[:rest]] += 1
            out[i, :, t] = base
    return out, own


# --------------------------------------------------------------------------------------------
# Diagnosis


def _describe_period(problem: PlanProblem, t: int) -> str:
    return f"period {t + 1} ({problem.period_starts()[t]:%Y-%m-%d %H:%M})"


def _diagnose(problem: PlanProblem) -> InfeasiblePlanError:
    """Find and explain why no plan satisfies every constraint."""
    conflicts: list[str] = []
    suggestions: list[str] = []
    allowed = problem.allowed()
    vc = np.array([w.vcpus for w in problem.workloads])
    quota = {q.location: q.vcpus for q in problem.quotas}
    first_bad: str | None = None
    for i, w in enumerate(problem.workloads):
        opened = [problem.locations[j] for j in np.flatnonzero(allowed[i])]
        peak = int(problem.demand[i].max())
        t_peak = int(problem.demand[i].argmax())
        if not opened and peak > 0:
            where = ", ".join(loc.key for loc in w.allowed) or "any location"
            conflicts.append(
                f"{w.name} needs {peak} replica(s) in {_describe_period(problem, t_peak)} but "
                f"none of its allowed locations ({where}) has a price for a "
                f"{w.vcpus:g}-vCPU/{w.memory_gib:g}-GiB replica"
            )
            suggestions.append(f"allow a priced region for {w.name} or add prices for its shape")
            first_bad = first_bad or w.name
            continue
        if w.min_locations > len(opened) and peak > 0:
            conflicts.append(
                f"{w.name} needs at least {w.min_locations} locations (HA) but only "
                f"{len(opened)} are allowed and priced ({', '.join(o.key for o in opened)})"
            )
            suggestions.append(
                f"allow {w.min_locations - len(opened)} more region(s) for {w.name} "
                f"or lower its min_locations"
            )
            first_bad = first_bad or w.name
        short = np.flatnonzero(
            len(opened) * _share_cap(w.max_share, problem.demand[i]) < problem.demand[i]
        )
        if len(short) and w.max_share < 1:
            t = int(short[0])
            conflicts.append(
                f"{w.name} may put at most {w.max_share:.0%} of its replicas in one location "
                f"but only {len(opened)} location(s) are allowed and priced "
                f"({problem.demand[i, t]} replicas in {_describe_period(problem, t)})"
            )
            suggestions.append(
                f"raise max_share of {w.name} to {1 / len(opened):.0%} or allow more regions"
            )
            first_bad = first_bad or w.name
        cap = sum(quota.get(loc, math.inf) for loc in opened)
        need = problem.demand[i] * vc[i]
        over = np.flatnonzero(need > cap + 1e-9)
        if len(over):
            t = int(over[0])
            conflicts.append(
                f"{w.name} needs {int(need[t]):d} vCPUs ({problem.demand[i, t]} replicas) in "
                f"{_describe_period(problem, t)} but the quotas of its allowed locations total "
                f"{cap:g} vCPUs"
            )
            suggestions.append(
                f"raise a vCPU quota among {', '.join(o.key for o in opened)} by "
                f"{need[t] - cap:g}, or allow another region for {w.name}"
            )
            first_bad = first_bad or w.name
    if conflicts:
        return InfeasiblePlanError(
            "no plan satisfies every constraint.",
            conflicts=conflicts,
            suggestions=suggestions,
            workload=first_bad,
        )

    # First failing period (a shorter horizon is a relaxation).
    lo, hi = 1, problem.horizon
    while lo < hi:
        mid = (lo + hi) // 2
        if _feasible(problem, n_t=mid).x is None:
            hi = mid
        else:
            lo = mid + 1
    n_t = lo
    period_text = _describe_period(problem, n_t - 1)
    groups = _groups(problem)
    per_workload = {"residency", "throttle", "share", "ha"}
    shared = [g for g in groups if g[0] not in per_workload]
    own = [g for g in groups if g[0] in per_workload]

    def infeasible(disabled: Iterable[Group], only: Sequence[int] | None = None) -> bool:
        return _feasible(problem, n_t=n_t, disabled=frozenset(disabled), only=only).x is None

    culprits: list[int] | None = None
    if infeasible(shared):
        # Some workloads cannot be placed even alone: find them and their own conflicts.
        culprits = []
        for i in range(len(problem.workloads)):
            if infeasible(shared, only=[i]):
                culprits.append(i)
                if len(culprits) == 3:
                    break
        candidates = [g for g in own if any(g[1] == problem.workloads[i].name for i in culprits)]
        base_disabled = set(shared)
    else:
        candidates = shared + own
        base_disabled = set()
    # Deletion filter: what stays is a minimal set of groups that still conflict.
    keep: list[Group] = []
    off = set(base_disabled) | set(candidates)
    if not infeasible(off, culprits):
        # The candidates are needed; filter them one by one.
        rest = list(candidates)
        for g in list(rest):
            trial = set(base_disabled) | {h for h in candidates if h not in rest or h == g}
            if infeasible(trial, culprits):
                rest.remove(g)
        keep = rest
    involved = sorted(
        {
            problem.workloads[i].name
            for i in (culprits if culprits is not None else range(len(problem.workloads)))
        }
    )
    for g in keep:
        relaxed = _feasible(
            problem, n_t=n_t, disabled=frozenset(base_disabled | {g}), only=culprits
        )
        text, hint = _explain_group(problem, g, relaxed.x, n_t)
        conflicts.append(f"{text} in {period_text}")
        suggestions.append(hint)
    if culprits is not None:
        for i in culprits:
            w = problem.workloads[i]
            conflicts.append(
                f"serving the forecast demand of {w.name} "
                f"({int(problem.demand[i, n_t - 1])} replicas in {period_text})"
            )
    else:
        touched = _workloads_touching(problem, keep)
        names = touched or involved
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        conflicts.append(f"serving the forecast demand of {shown} by {period_text}")
    if not keep:
        suggestions.append("lower the demand quantile or the demand of these workloads")
    single = involved[0] if culprits is not None and len(culprits) == 1 else None
    return InfeasiblePlanError(
        f"no plan satisfies every constraint (first failing: {period_text}).",
        conflicts=conflicts,
        suggestions=suggestions,
        workload=single,
    )


def _workloads_touching(problem: PlanProblem, groups: Sequence[Group]) -> list[str]:
    allowed = problem.allowed()
    names: set[str] = set()
    for kind, subject in groups:
        if kind in {"residency", "throttle", "share", "ha"}:
            names.add(subject)
        elif kind == "quota":
            j = problem.locations.index(Location.parse(subject))
            names.update(problem.workloads[i].name for i in np.flatnonzero(allowed[:, j]))
        elif kind == "budget":
            cols = [j for j, loc in enumerate(problem.locations) if loc.cloud == subject]
            names.update(
                problem.workloads[i].name for i in np.flatnonzero(allowed[:, cols].any(axis=1))
            )
    return sorted(names)


def _explain_group(
    problem: PlanProblem, group: Group, relaxed: np.ndarray | None, n_t: int
) -> tuple[str, str]:
    """Words for one conflicting group and a suggestion sized from the relaxed plan."""
    kind, subject = group
    cur = problem.currency
    if kind == "quota":
        loc = Location.parse(subject)
        q = min(x.vcpus for x in problem.quotas if x.location == loc)
        text = f"the vCPU quota of {q:g} at {subject}"
        hint = f"raise the vCPU quota at {subject}"
        if relaxed is not None:
            j = problem.locations.index(loc)
            vc = np.array([w.vcpus for w in problem.workloads])
            used = float((relaxed[:, j, :] * vc[:, None]).sum(axis=0).max())
            if used > q:
                hint += f" to {used:g} (a plan exists at that level)"
        return text, hint
    if kind == "budget":
        amount = min(b.amount for b in problem.budgets if b.cloud == subject)
        text = f"the {subject} budget of {amount:,.2f} {cur} over the horizon"
        hint = f"raise the {subject} budget"
        if relaxed is not None:
            per_w = _evaluate_cloud(problem, relaxed, subject)
            if per_w > amount:
                hint += f" to {per_w:,.2f} {cur} (a plan exists at that level)"
        return text, hint
    i = [w.name for w in problem.workloads].index(subject)
    w = problem.workloads[i]
    if kind == "residency":
        allowed = ", ".join(loc.key for loc in w.allowed)
        text = f"the allowed locations of {subject} ({allowed})"
        hint = f"allow another region for {subject}"
        if relaxed is not None:
            extra = [
                problem.locations[j].key
                for j in np.flatnonzero(relaxed[i].sum(axis=1) > 0)
                if problem.locations[j] not in w.allowed
            ]
            if extra:
                hint = f"allow {', '.join(extra)} for {subject}"
        return text, hint
    if kind == "throttle":
        text = (
            f"the change throttle of {subject} (at most {w.max_change:.0%} of its replicas "
            "added per period)"
        )
        return text, f"raise max_change of {subject} or start from a placement closer to the plan"
    if kind == "share":
        text = f"the maximum share of {subject} per location ({w.max_share:.0%})"
        return text, f"raise max_share of {subject} or allow another region"
    text = f"the HA minimum of {subject} ({w.min_locations} locations)"
    return text, f"lower min_locations of {subject} or allow another region"


def _evaluate_cloud(problem: PlanProblem, x: np.ndarray, cloud: str) -> float:
    mask = np.array([loc.cloud == cloud for loc in problem.locations])
    sub = x.copy()
    sub[:, ~mask, :] = 0
    return float(_evaluate(problem, sub).sum())


# --------------------------------------------------------------------------------------------
# Explanation


def _money(value: float, currency: str) -> str:
    sign = "-" if value < 0 else ""
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    amount = f"{abs(value):,.0f}" if abs(value) >= 100 else f"{abs(value):,.2f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def _span(problem: PlanProblem) -> str:
    hours = period_hours(problem.period) * problem.horizon
    if hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{hours:g} hours"


def _trend(problem: PlanProblem, i: int, j: int) -> str | None:
    """Words like 'aws:us-east-1 spot forecast +38% from Thu' when a price rises ahead."""
    c = problem.cost[i, j]
    if np.isnan(c[0]) or c[0] <= 0:
        return None
    rise = np.flatnonzero(c >= c[0] * 1.1)
    if not len(rise):
        return None
    t = int(rise[0])
    peak = float(np.nanmax(c[t:]))
    kind = str(problem.kind[i, j, t]).replace("_", "-") if problem.kind.size else "price"
    source = "forecast" if problem.forecast_price.size and problem.forecast_price[i, j, t] else ""
    when = problem.period_starts()[t]
    day = f"{when:%a}" if period_hours(problem.period) >= 24 else f"{when:%a %H:%M}"
    words = " ".join(x for x in (problem.locations[j].key, kind, source) if x)
    return f"{words} {peak / c[0] - 1:+.0%} from {day} (period {t + 1})"


def _reasons(
    problem: PlanProblem,
    x: np.ndarray,
    base: np.ndarray,
    saving: np.ndarray,
    quantile: float,
) -> dict[tuple[int, int], str]:
    """A reason for every (workload, location) that changes in the first period."""
    out: dict[tuple[int, int], str] = {}
    cur = problem.current
    mv = [w.move_cost for w in problem.workloads]
    allowed = problem.allowed()
    for i, w in enumerate(problem.workloads):
        first = x[i, :, 0]
        delta = first - cur[i]
        changed = np.flatnonzero(delta != 0)
        if not len(changed):
            continue
        relocation = not np.array_equal(first, base[i, :, 0])
        added = [int(j) for j in changed if delta[j] > 0]
        removed = [int(j) for j in changed if delta[j] < 0]
        if not relocation:
            text = (
                f"scale in place to {int(first.sum())} replicas to serve the forecast demand "
                f"(quantile {quantile:g}; was {int(cur[i].sum())})"
            )
            for k in changed:
                out[(i, int(k))] = text
            continue
        parts: list[str] = []
        for j in removed:
            if not allowed[i, j]:
                parts.append(f"{problem.locations[j].key} is not allowed for {w.name}")
            trend = _trend(problem, i, j)
            if trend:
                parts.append(trend)
        move_paid = float(np.maximum(0, delta).sum() * mv[i])
        dest = [problem.locations[j].key for j in added] or ["the remaining locations"]
        money = _money(float(saving[i]), problem.currency)
        after = f" after a {_money(move_paid, problem.currency)} move cost" if move_paid else ""
        if saving[i] > 0:
            parts.append(f"{', '.join(dest)} cheaper by {money} over {_span(problem)}{after}")
        else:
            parts.append(
                f"required by the constraints (costs {_money(-float(saving[i]), problem.currency)}"
                f" more over {_span(problem)}{after})"
            )
        text = "; ".join(parts)
        for k in changed:
            out[(i, int(k))] = text
    return out


# --------------------------------------------------------------------------------------------
# Solve and package


def _placements(problem: PlanProblem, x: np.ndarray) -> tuple[Placement, ...]:
    return tuple(
        Placement(problem.workloads[i].name, problem.locations[j], int(x[i, j]))
        for i in range(x.shape[0])
        for j in range(x.shape[1])
        if x[i, j] > 0
    )


def solve_problem(
    problem: PlanProblem,
    *,
    quantile: float = 0.8,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    notes: Sequence[str] = (),
    now: datetime | None = None,
    extra_inputs: Mapping[str, Any] | None = None,
) -> Plan:
    """Solve a :class:`PlanProblem`, apply the guardrails, explain it and package the Plan.

    Raises:
        InfeasiblePlanError: When the constraints cannot all hold (diagnosed).
        PlanError: When the solver finds no plan in ``time_limit`` seconds.
    """
    notes = list(notes)
    sol = _solve_lazy(problem, gap=max_gap, time_limit=time_limit)
    if sol.x is None:
        if sol.status == 2:
            raise _diagnose(problem) from None
        raise PlanError(
            f"the solver found no plan within {time_limit:g} s (status {sol.status}); "
            "raise the time limit or the optimality gap"
        )
    if sol.status == 1:
        notes.append(f"stopped at the time limit with an optimality gap of {sol.gap:.2%}")
    x = sol.x
    base, own = _baseline(problem, x)
    if own:
        shown = ", ".join(problem.workloads[i].name for i in own[:5])
        notes.append(f"no priced current placement for {shown}: no saving counted for them")
    confidence = problem.confidence
    pinned: dict[int, np.ndarray] = {}
    for _round in range(3):
        plan_w = _evaluate(problem, x)
        base_w = _evaluate(
            problem, np.where(np.isin(np.arange(len(x)), own)[:, None, None], x, base)
        )
        saving = base_w - plan_w
        band = (np.nan_to_num(problem.cost_upper - problem.cost_lower) / 2.0)[:, :, : x.shape[2]]
        price_unc = (np.abs(x - base) * band).sum(axis=(1, 2))
        placed = np.nan_to_num(problem.cost[:, :, : x.shape[2]], nan=0.0)
        stake = (np.maximum(0.0, x - base) * placed).sum(axis=(1, 2))
        uncertainty = (1.0 - confidence) * stake + price_unc
        reject = [
            i
            for i in range(len(x))
            if i not in own
            and i not in pinned
            and not np.array_equal(x[i, :, 0], base[i, :, 0])
            and saving[i] <= uncertainty[i]
            and _movable(problem, i, base)
        ]
        if not reject:
            break
        trial = dict(pinned)
        trial.update({i: base[i, :, 0] for i in reject})
        # First re-plan only the held workloads, the others keeping their schedule; when the
        # shared constraints do not allow that, re-plan everyone.
        others = {i: x[i] for i in range(len(x)) if i not in trial}
        retry = _solve_lazy(problem, pinned={**others, **trial}, gap=max_gap, time_limit=time_limit)
        if retry.x is None:
            retry = _solve_lazy(problem, pinned=trial, gap=max_gap, time_limit=time_limit)
        if retry.x is None:
            names = ", ".join(problem.workloads[i].name for i in reject[:5])
            notes.append(
                f"guardrail not applied to {names}: keeping them in place breaks the constraints"
            )
            break
        for i in reject:
            w = problem.workloads[i]
            notes.append(
                f"{w.name}: moves not made, saving {_money(float(saving[i]), problem.currency)} "
                f"is within the forecast uncertainty "
                f"({_money(float(uncertainty[i]), problem.currency)}, confidence "
                f"{confidence[i]:.0%})"
            )
        pinned = trial
        x = retry.x
    plan_w = _evaluate(problem, x)
    base_full = np.where(np.isin(np.arange(len(x)), own)[:, None, None], x, base)
    base_w = _evaluate(problem, base_full)
    total_plan, total_base = float(plan_w.sum()), float(base_w.sum())
    total_saving = total_base - total_plan
    relocates = any(not np.array_equal(x[i, :, 0], base_full[i, :, 0]) for i in range(len(x)))
    threshold = max(min_saving, min_saving_pct / 100.0 * abs(total_base))
    outcome = "optimised"
    if relocates and total_saving < threshold:
        hold = {i: base_full[i, :, 0] for i in range(len(x)) if i not in own}
        held = _solve_lazy(problem, pinned=hold, gap=max_gap, time_limit=time_limit)
        if held.x is None:
            notes.append(
                f"saving {_money(total_saving, problem.currency)} is below the minimum "
                f"{_money(threshold, problem.currency)}, but the current placement breaks the "
                "constraints: the moves are required"
            )
        else:
            notes.append(
                f"saving {_money(total_saving, problem.currency)} is below the minimum "
                f"{_money(threshold, problem.currency)}: no relocation written"
            )
            outcome = "below_minimum_saving"
            x = held.x
            plan_w = _evaluate(problem, x)
            total_plan = float(plan_w.sum())
    saving_w = base_w - plan_w
    reasons = _reasons(problem, x, base_full, saving_w, quantile)
    moves: list[Move] = []
    for (i, j), reason in sorted(reasons.items()):
        w = problem.workloads[i]
        before, after = int(problem.current[i, j]), int(x[i, j, 0])
        added_total = float(np.maximum(0, x[i, :, 0] - problem.current[i]).sum())
        share = max(0, after - before) / added_total if added_total else 0.0
        moves.append(
            Move(
                workload=w.name,
                location=problem.locations[j],
                before=before,
                after=after,
                saving=round(float(saving_w[i]) * share, 6),
                confidence=round(float(confidence[i]), 6),
                reason=reason,
            )
        )
    moved = sorted({m.workload for m in moves})
    idx = [i for i, w in enumerate(problem.workloads) if w.name in moved]
    weights = x[idx, :, 0].sum(axis=1) if idx else x[:, :, 0].sum(axis=1)
    conf_source = confidence[idx] if idx else confidence
    plan_conf = float(np.average(conf_source, weights=weights)) if float(weights.sum()) > 0 else 0.0
    inputs: dict[str, Any] = {
        "planner_version": _PLANNER_VERSION,
        "quantile": quantile,
        "max_gap": max_gap,
        "time_limit": time_limit,
        "min_saving": min_saving,
        "min_saving_pct": min_saving_pct,
        "solver": "HiGHS (highspy)",
        "solver_gap": sol.gap,
        "outcome": outcome,
        "problem_digest": problem.digest(),
        "problem": problem.to_dict(),
    }
    if extra_inputs:
        inputs.update(extra_inputs)
    plan_id = hashlib.sha256(
        json.dumps(
            {k: v for k, v in inputs.items() if k not in ("problem", "solver_gap")},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:12]
    created = now or pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime()
    return Plan(
        plan_id=plan_id,
        created_at=created,
        period_start=problem.period_start,
        period=problem.period,
        horizon=problem.horizon,
        current=_placements(problem, problem.current),
        schedule=tuple(_placements(problem, x[:, :, t]) for t in range(x.shape[2])),
        moves=tuple(moves),
        expected_cost=round(total_plan, 6),
        baseline_cost=round(float(base_w.sum()), 6),
        currency=problem.currency,
        confidence=round(plan_conf, 6),
        inputs=inputs,
        notes=tuple(notes),
    )


def _movable(problem: PlanProblem, i: int, base: np.ndarray) -> bool:
    """Whether the baseline's first period is possible for the workload on its own."""
    allowed = problem.allowed()[i]
    return bool(np.all(allowed[base[i, :, 0] > 0]))


def plan(
    demand: pd.DataFrame,
    prices: pd.DataFrame | Catalog,
    workloads: Sequence[Workload],
    current: Sequence[Placement] = (),
    *,
    quantile: float = 0.8,
    price_forecast: pd.DataFrame | None = None,
    accuracy: pd.DataFrame | None = None,
    quotas: Sequence[Quota] = (),
    budgets: Sequence[Budget] = (),
    commitments: Sequence[Commitment] = (),
    horizon: int | None = None,
    start: datetime | None = None,
    period: str | None = None,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    now: datetime | None = None,
) -> Plan:
    """Plan every workload's replicas per location and period over the forecast horizon.

    Args:
        demand: Forecast frame (:data:`~cloudbalance.schema.FORECAST`); ``unique_id`` is the
            workload name, values are in the workload's demand units.
        prices: Prices frame (:data:`~cloudbalance.schema.PRICES`) or a built catalog.
        workloads: The workload specs.
        current: Where the replicas run now.
        quantile: Demand quantile to serve (0.5 = ``yhat``; see :func:`demand_replicas`).
        price_forecast: Optional forecast of unit prices (``cloud:region:SkuId:price_kind``).
        accuracy: Optional accuracy frame; its ``confidence`` per workload drives guardrails.
        quotas: vCPU quotas per location.
        budgets: Spend caps per cloud over the horizon.
        commitments: Capacity already paid for (reserved, committed-use, savings plans).
        horizon: Plan at most this many periods (default: every forecast period).
        start: Ignore forecast rows before this instant.
        period: Period length (default: inferred from the forecast's ``ds``).
        min_saving: Minimum total saving (currency) for a relocation to be written.
        min_saving_pct: Minimum total saving in percent of the baseline cost.
        max_gap: Relative optimality gap at which the solver may stop.
        time_limit: Solver time limit in seconds.
        now: ``created_at`` of the plan (default: now).

    Returns:
        The :class:`~cloudbalance.models.Plan`; ``inputs["problem"]`` reproduces it with
        :func:`reproduce_plan`.

    Raises:
        SchemaError: A frame breaks its schema.
        PlanError: Bad workload specs, or no plan found in time.
        InfeasiblePlanError: The constraints conflict (which, where, and what to change).
    """
    catalog = (
        prices
        if isinstance(prices, Catalog)
        else load_catalog(prices, price_forecast=price_forecast)
    )
    problem, notes = build_problem(
        demand,
        catalog,
        workloads,
        current,
        quantile=quantile,
        accuracy=accuracy,
        quotas=quotas,
        budgets=budgets,
        commitments=commitments,
        horizon=horizon,
        start=start,
        period=period,
    )
    return solve_problem(
        problem,
        quantile=quantile,
        min_saving=min_saving,
        min_saving_pct=min_saving_pct,
        max_gap=max_gap,
        time_limit=time_limit,
        notes=notes,
        now=now,
        extra_inputs={
            "prices_digest": catalog.digest,
            "prices_observed_at": str(catalog.observed_at),
        },
    )


def reproduce_plan(stored: Plan, *, now: datetime | None = None) -> Plan:
    """Solve again from the inputs a plan carries; the result has the same id and schedule."""
    data = stored.inputs.get("problem")
    if not isinstance(data, Mapping):
        raise PlanError(f"plan {stored.plan_id} does not carry its problem; cannot reproduce it")
    problem = PlanProblem.from_dict(data)
    extra = {
        k: stored.inputs[k] for k in ("prices_digest", "prices_observed_at") if k in stored.inputs
    }
    return solve_problem(
        problem,
        quantile=float(stored.inputs.get("quantile", 0.8)),
        min_saving=float(stored.inputs.get("min_saving", 0.0)),
        min_saving_pct=float(stored.inputs.get("min_saving_pct", 0.0)),
        max_gap=float(stored.inputs.get("max_gap", 0.005)),
        time_limit=float(stored.inputs.get("time_limit", 120.0)),
        now=now or stored.created_at,
        extra_inputs=extra,
    )
