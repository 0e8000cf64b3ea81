"""Budgets: what may be spent per cloud, workload, tag or account, and where spend is heading.

One setting, ``budgets:`` in ``cloudbalance.yaml``, serves two readers:

- people: :func:`budget_status` gives, per budget, the spend to date in the current period
  (month, quarter, year or a fixed window), the projected total at the end of the period (spend
  to date plus the cost forecast for the rest, with its interval) and the probability of
  crossing 50/75/90/100% of the amount. ``cloudbalance budgets``, the report and the budget
  notifications all read it.
- the planner: :func:`planner_budgets` turns the per-cloud budgets into the planner's caps over
  its horizon (pro rata by time), so a cap is never written twice.

The period is the one containing the *data as of* instant (the end of the latest charge in the
store), not the clock: a bill that is two days late does not make the month look cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

from cloudbalance.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.config import Settings
    from cloudbalance.store import Store

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BudgetStatus",
    "SpendBudget",
    "budget_status",
    "evaluate_budgets",
    "planner_budgets",
]

#: Shares of a budget worth telling someone about.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0)

#: Days of history behind the run-rate projection used when no forecast covers a budget.
RUN_RATE_DAYS = 28

Period = Literal["month", "quarter", "year"]


@dataclass(frozen=True)
class SpendBudget:
    """A spending cap in the configured currency, as written under ``budgets:``.

    Scope fields narrow the cost lines counted; all given ones must match (none: all spend).

    Attributes:
        amount: The cap for one period.
        name: How people see it (default: built from the scope).
        cloud: ``aws``, ``azure``, ``gcp``... (``x_Cloud``).
        workload: A configured workload (``x_Workload``).
        account: A billing account or sub-account id.
        tag: ``key=value`` that the cost line's tags hold.
        period: ``month`` (default), ``quarter`` or ``year``; ignored with ``start``/``end``.
        start: First day of a fixed budget window (with ``end``).
        end: Last day (inclusive) of a fixed budget window.
        thresholds: Shares of ``amount`` that are reported and notified.
    """

    amount: float
    name: str | None = None
    cloud: str | None = None
    workload: str | None = None
    account: str | None = None
    tag: str | None = None
    period: Period = "month"
    start: date | None = None
    end: date | None = None
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS

    @property
    def label(self) -> str:
        """The name, or the scope in words (``aws / checkout``, ``all spend``)."""
        if self.name:
            return self.name
        parts = [p for p in (self.cloud, self.workload, self.account, self.tag) if p]
        return " / ".join(parts) if parts else "all spend"

    @property
    def cloud_only(self) -> bool:
        """Whether only the cloud narrows it (the budgets the planner enforces)."""
        return self.cloud is not None and not (self.workload or self.account or self.tag)

    def problems(self) -> list[str]:
        """What is wrong with this budget, in words (empty when it is fine)."""
        found = []
        if not (math.isfinite(self.amount) and self.amount > 0):
            found.append(f"amount must be a positive number, got {self.amount}")
        if (self.start is None) != (self.end is None):
            found.append("give both start and end for a fixed window, or neither")
        if self.start is not None and self.end is not None and self.end < self.start:
            found.append("end is before start")
        if self.tag is not None and "=" not in self.tag:
            found.append(f"tag must be key=value, got {self.tag!r}")
        if not self.thresholds or any(not 0 < t <= 10 for t in self.thresholds):
            found.append("thresholds must be shares of the amount, e.g. [0.5, 0.75, 0.9, 1.0]")
        return found

    def window(self, as_of: datetime) -> tuple[datetime, datetime]:
        """``[start, end)`` of the period containing ``as_of`` (naive UTC)."""
        if self.start is not None and self.end is not None:
            return (
                datetime.combine(self.start, datetime.min.time()),
                datetime.combine(self.end + timedelta(days=1), datetime.min.time()),
            )
        year, month = as_of.year, as_of.month
        if self.period == "year":
            return datetime(year, 1, 1), datetime(year + 1, 1, 1)
        first = month if self.period == "month" else 3 * ((month - 1) // 3) + 1
        months = 1 if self.period == "month" else 3
        end_month = first + months
        end = datetime(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
        return datetime(year, first, 1), end

    def matches(self, costs: pd.DataFrame) -> pd.Series:
        """Which cost lines count against this budget (a boolean mask)."""
        import pandas as pd

        mask = pd.Series(True, index=costs.index)
        if self.cloud is not None:
            cloud = costs["x_Cloud"].fillna(costs["ProviderName"]).astype(str).str.lower()
            mask &= cloud == self.cloud.lower()
        if self.workload is not None:
            mask &= costs["x_Workload"].astype("string").fillna("") == self.workload
        if self.account is not None:
            account = costs["BillingAccountId"].astype("string").fillna("") == self.account
            if "SubAccountId" in costs:
                account |= costs["SubAccountId"].astype("string").fillna("") == self.account
            mask &= account
        if self.tag is not None:
            key, _, value = self.tag.partition("=")
            tags = costs["Tags"] if "Tags" in costs else pd.Series(None, index=costs.index)
            mask &= tags.map(lambda t: _tag_value(t, key) == value)
        return mask


def _tag_value(tags: Any, key: str) -> str | None:
    import json

    if tags is None or (isinstance(tags, float) and math.isnan(tags)):
        return None
    if isinstance(tags, str):
        try:
            tags = json.loads(tags)
        except ValueError:
            return None
    if isinstance(tags, Mapping):
        value = tags.get(key)
        return None if value is None else str(value)
    return None


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands in its current period.

    Attributes:
        budget: The budget.
        start: First instant of the period.
        end: End of the period (exclusive).
        as_of: Data as of (end of the latest charge held).
        actual: Spent in the period up to ``as_of``.
        projected: Expected total at the end of the period.
        lower: Lower end of the projection's interval (never below ``actual`` less credits).
        upper: Upper end of the projection's interval.
        interval: Coverage of ``[lower, upper]`` (e.g. 0.8).
        probabilities: Per threshold share, the probability that the period ends above it.
        basis: What the projection stands on, in words.
        currency: Currency of the amounts.
    """

    budget: SpendBudget
    start: datetime
    end: datetime
    as_of: datetime
    actual: float
    projected: float
    lower: float
    upper: float
    interval: float
    probabilities: Mapping[float, float] = field(default_factory=dict)
    basis: str = ""
    currency: str = "USD"

    @property
    def used(self) -> float:
        """Share of the amount already spent."""
        return self.actual / self.budget.amount

    @property
    def projected_share(self) -> float:
        """Projected share of the amount at the end of the period."""
        return self.projected / self.budget.amount

    @property
    def crossed(self) -> tuple[float, ...]:
        """Thresholds the spend to date has already crossed."""
        return tuple(t for t in self.budget.thresholds if self.actual >= t * self.budget.amount)

    def likely(self, probability: float = 0.5) -> tuple[float, ...]:
        """Thresholds not crossed yet that the period is likely (``>= probability``) to cross."""
        return tuple(
            t
            for t in self.budget.thresholds
            if t not in self.crossed and self.probabilities.get(t, 0.0) >= probability
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (report, ``budgets --format json``)."""
        b = self.budget
        return {
            "budget": b.label,
            "scope": {
                "cloud": b.cloud,
                "workload": b.workload,
                "account": b.account,
                "tag": b.tag,
            },
            "amount": b.amount,
            "currency": self.currency,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "actual": round(self.actual, 2),
            "projected": round(self.projected, 2),
            "lower": round(self.lower, 2),
            "upper": round(self.upper, 2),
            "interval": self.interval,
            "used": round(self.used, 4),
            "probabilities": {f"{t:g}": round(p, 4) for t, p in self.probabilities.items()},
            "basis": self.basis,
        }


def _daily(costs: pd.DataFrame) -> pd.Series:
    """EffectiveCost per UTC day."""
    import pandas as pd

    if costs.empty:
        return pd.Series(dtype=float)
    day = pd.to_datetime(costs["ChargePeriodStart"]).dt.floor("D")
    return costs.groupby(day)["EffectiveCost"].sum().astype(float)


def _forecast_rows(forecast: pd.DataFrame, budget: SpendBudget) -> pd.DataFrame | None:
    """The forecast of this budget's scope, when one is made (per cloud or per workload).

    ``forecast`` carries a ``kind`` column (``cloudbalance.series.Forecasts.forecast``).
    """
    if forecast.empty or "kind" not in forecast:
        return None
    uid = forecast["unique_id"].astype(str)
    if budget.cloud_only and budget.cloud is not None:
        rows = forecast[(forecast["kind"] == "cloud_cost") & (uid == budget.cloud.lower())]
    elif budget.workload and not (budget.cloud or budget.account or budget.tag):
        rows = forecast[(forecast["kind"] == "cost") & (uid == budget.workload)]
    elif not (budget.cloud or budget.workload or budget.account or budget.tag):
        # all spend: the sum of the per-cloud forecasts
        clouds = forecast[forecast["kind"] == "cloud_cost"]
        if clouds.empty:
            return None
        rows = clouds.groupby("ds", as_index=False).agg(
            yhat=("yhat", "sum"),
            yhat_lower=("yhat_lower", "sum"),
            yhat_upper=("yhat_upper", "sum"),
            interval=("interval", "first"),
        )
    else:
        return None
    return None if rows.empty else rows


def budget_status(
    budgets: Iterable[SpendBudget],
    costs: pd.DataFrame,
    forecast: pd.DataFrame | None = None,
    *,
    as_of: datetime | None = None,
    interval: float = 0.8,
    currency: str = "USD",
) -> list[BudgetStatus]:
    """Spend to date and the projected end of the current period of each budget.

    Args:
        budgets: The budgets.
        costs: Cost lines (a costs frame) covering at least the current periods.
        forecast: The forecasts with their ``kind`` (``cloud_cost`` per cloud, ``cost`` per
            workload, money per day); the rest of the period beyond its horizon is
            extrapolated from its last week. Budgets without a matching forecast use the
            run rate of the last :data:`RUN_RATE_DAYS` days.
        as_of: Data as of (default: the end of the latest charge in ``costs``).
        interval: Coverage of the projection's interval when it comes from the run rate.
        currency: The currency of the amounts.
    """
    import numpy as np
    import pandas as pd

    budgets = list(budgets)
    if not budgets:
        return []
    if as_of is None:
        if costs.empty:
            raise ConfigError("no cost data in the store: budgets need cost data")
        as_of = pd.Timestamp(costs["ChargePeriodEnd"].max()).to_pydatetime()
    fc = forecast if forecast is not None else pd.DataFrame()
    out = []
    for budget in budgets:
        start, end = budget.window(as_of)
        scoped = costs[budget.matches(costs)] if not costs.empty else costs
        daily = _daily(scoped)
        in_period = daily[(daily.index >= start) & (daily.index < min(end, as_of))]
        actual = float(in_period.sum())
        remaining = pd.date_range(max(start, as_of), end, freq="D", inclusive="left")
        level = interval
        if len(remaining) == 0:
            mean = low = high = 0.0
            basis = "period complete" if as_of >= end else "no day left"
        else:
            rows = _forecast_rows(fc, budget)
            if rows is not None:
                rows = rows.assign(ds=pd.to_datetime(rows["ds"])).set_index("ds").sort_index()
                tail = rows.iloc[-7:]
                ahead = rows.reindex(remaining)
                for column in ("yhat", "yhat_lower", "yhat_upper"):
                    ahead[column] = ahead[column].fillna(float(tail[column].mean()))
                mean = float(ahead["yhat"].sum())
                low = float(ahead["yhat_lower"].clip(lower=0).sum())
                high = float(ahead["yhat_upper"].sum())
                if "interval" in rows:
                    level = float(rows["interval"].iloc[0])
                covered = int(rows.index.isin(remaining).sum())
                basis = f"forecast ({covered} of {len(remaining)} remaining days"
                basis += (
                    ")" if covered == len(remaining) else ", the rest at its last week's level)"
                )
            else:
                recent = daily[daily.index >= as_of - timedelta(days=RUN_RATE_DAYS)]
                if recent.empty:
                    mean = low = high = 0.0
                    basis = "no recent spend"
                else:
                    n = len(remaining)
                    rate = float(recent.mean())
                    spread = float(recent.std(ddof=1)) if len(recent) > 1 else 0.0
                    z = NormalDist().inv_cdf((1 + level) / 2)
                    mean = rate * n
                    half = z * spread * math.sqrt(n)
                    low, high = max(mean - half, 0.0), mean + half
                    basis = f"run rate of the last {len(recent)} days (no forecast for this scope)"
        z = NormalDist().inv_cdf((1 + level) / 2)
        sigma = max((high - low) / (2 * z), 0.0)
        projected = actual + mean
        probabilities = {}
        for share in budget.thresholds:
            gap = share * budget.amount - projected
            if sigma > 0:
                probabilities[share] = 1 - NormalDist(0.0, sigma).cdf(gap)
            else:
                probabilities[share] = 1.0 if gap <= 0 else 0.0
            if actual >= share * budget.amount:
                probabilities[share] = 1.0
        out.append(
            BudgetStatus(
                budget=budget,
                start=start,
                end=end,
                as_of=as_of,
                actual=actual,
                projected=projected,
                lower=actual + low,
                upper=actual + high,
                interval=level,
                probabilities={k: float(np.clip(v, 0, 1)) for k, v in probabilities.items()},
                basis=basis,
                currency=currency,
            )
        )
    return out


def evaluate_budgets(settings: Settings, store: Store) -> list[BudgetStatus]:
    """:func:`budget_status` of the configured budgets on the store's costs and latest forecast."""
    import pandas as pd

    if not settings.budgets:
        return []
    ends = store.data_as_of()
    if not ends:
        raise ConfigError("no cost data in the store: budgets need cost data (run ingest first)")
    when = max(ends.values())
    # Only the longest period configured is read: a year budget needs the year's lines.
    earliest = min(b.window(when)[0] for b in settings.budgets)
    since = min(earliest, when - timedelta(days=RUN_RATE_DAYS + 1))
    costs = store.costs(start=since, end=when)
    forecast, _, _ = store.latest_forecast()
    forecast = forecast[pd.to_datetime(forecast["ds"]) >= when] if not forecast.empty else forecast
    return budget_status(
        settings.budgets,
        costs,
        forecast,
        as_of=when,
        interval=settings.forecast.interval,
        currency=settings.currency.report or _currency_of(costs),
    )


def _currency_of(costs: pd.DataFrame) -> str:
    seen = sorted(set(costs["BillingCurrency"].dropna().astype(str))) if not costs.empty else []
    return seen[0] if len(seen) == 1 else "USD"


def planner_budgets(settings: Settings, *, now: datetime | None = None) -> list[Any]:
    """The planner's per-cloud caps over its horizon, from the per-cloud budgets.

    A budget of ``amount`` for a period of ``P`` days allows ``amount * H / P`` over the
    planning horizon of ``H`` days (``forecast.horizon`` periods of ``forecast.freq``; pro rata
    by time, the period being the one containing ``now``); with several budgets for one cloud
    the tightest wins. Budgets narrowed by workload, account or tag are for people only.

    Returns:
        :class:`cloudbalance.plan.Budget` values (imported lazily: the solver is heavy).
    """
    import pandas as pd

    from cloudbalance.plan import Budget

    freq, horizon = settings.forecast.freq, settings.forecast.horizon
    origin = pd.Timestamp("2000-01-01")
    try:
        period_days = ((origin + pd.tseries.frequencies.to_offset(freq)) - origin) / pd.Timedelta(
            days=1
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"forecast.freq {freq!r} is not a period length") from err
    horizon_days = horizon * period_days
    when = now or datetime.now(UTC).replace(tzinfo=None)
    caps: dict[str, float] = {}
    for budget in settings.budgets:
        if not budget.cloud_only or budget.cloud is None:
            continue
        start, end = budget.window(when)
        days = (end - start).total_seconds() / 86_400
        cap = budget.amount * horizon_days / days
        cloud = budget.cloud.lower()
        caps[cloud] = min(cap, caps.get(cloud, math.inf))
    return [Budget(cloud, amount) for cloud, amount in caps.items()]
