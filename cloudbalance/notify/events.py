"""Events worth telling people about, as frozen values, and builders from a run's outputs.

Every event has a ``key``: the same fact seen by two runs has the same key, so it is sent once
(the store remembers what was sent). ``impact`` is the money at stake, when there is one, in
``currency``; rules filter on it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.budgets import BudgetStatus
    from cloudbalance.config import Settings
    from cloudbalance.models import Plan
    from cloudbalance.store import Store
    from cloudbalance.verify import RevertOutcome

__all__ = [
    "AnomalyDetected",
    "BudgetAlert",
    "Event",
    "PlanApplied",
    "RevertProposed",
    "SpikePredicted",
    "StepFailed",
    "anomaly_events",
    "budget_events",
    "events_from_steps",
    "plan_events",
    "revert_events",
    "spike_events",
    "step_failed_events",
]


@dataclass(frozen=True)
class Event:
    """Base of all events: what rules read."""

    kind: ClassVar[str] = "event"

    @property
    def key(self) -> str:
        """Identity of the fact (dedup across runs)."""
        raise NotImplementedError

    @property
    def title(self) -> str:
        """One line."""
        raise NotImplementedError

    @property
    def body(self) -> str:
        """A few lines of Markdown."""
        raise NotImplementedError

    @property
    def impact(self) -> float | None:
        """Money at stake (``None``: not a money event)."""
        return None

    @property
    def workload(self) -> str | None:
        """The workload it is about, if any."""
        return None

    @property
    def cloud(self) -> str | None:
        """The cloud it is about, if any."""
        return None


_MEASURES = {"cost": "workload cost", "cloud_cost": "cloud cost"}


def _label(series: str, measure: str) -> str:
    return f"{series} ({_MEASURES.get(measure, measure)})" if measure else series


#: Anomalies older than this before "data as of" are history, not news.
ANOMALY_DAYS = 7


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _day(value: datetime) -> str:
    return f"{value:%Y-%m-%d}"


@dataclass(frozen=True)
class SpikePredicted(Event):
    """The forecast expects a spike of a series (demand, cost or a spot price).

    Attributes:
        series: The series (``etl``, ``aws``, ``aws:us-east-1:m5:spot``).
        start, end, peak: When (first, last and highest period).
        expected, normal: Expected value at the peak and the normal level.
        probability: Probability that it happens.
        extra_cost: Money above the normal level over the spike, for cost series.
        currency: Currency of ``extra_cost``.
        measure: The series' kind (``demand``, ``cost``, ``cloud_cost``, ``price``).
    """

    kind: ClassVar[str] = "spike"
    series: str
    start: datetime
    end: datetime
    peak: datetime
    expected: float
    normal: float
    probability: float
    extra_cost: float | None = None
    currency: str = "USD"
    measure: str = ""

    @property
    def key(self) -> str:
        return f"spike:{self.measure}:{self.series}:{_day(self.start)}"

    @property
    def workload(self) -> str | None:
        return self.series if self.measure in ("demand", "cost") else None

    @property
    def cloud(self) -> str | None:
        return self.series.split(":")[0] if self.measure in ("cloud_cost", "price") else None

    @property
    def impact(self) -> float | None:
        return self.extra_cost

    @property
    def title(self) -> str:
        ratio = self.expected / self.normal if self.normal else math.inf
        return (
            f"Spike predicted: {_label(self.series, self.measure)} {ratio:.1f}x normal "
            f"from {_day(self.start)}"
        )

    @property
    def body(self) -> str:
        lines = [
            f"{_label(self.series, self.measure)}: expected {self.expected:,.4g} "
            f"at the peak on {_day(self.peak)} "
            f"against a normal {self.normal:,.4g}, {_day(self.start)} to {_day(self.end)}, "
            f"probability {self.probability:.0%}."
        ]
        if self.extra_cost is not None:
            lines.append(f"Extra cost over the spike: {_money(self.extra_cost, self.currency)}.")
        return "\n".join(lines)


@dataclass(frozen=True)
class AnomalyDetected(Event):
    """A point of cost history far from its seasonal level.

    Attributes:
        series: The workload or the cloud.
        ds: When.
        actual, expected: The cost and what was expected.
        currency: Currency of the amounts.
        anomaly_id: The incident's id (``<series>@<start>``) when the detector gives one;
            several anomalous days of one incident are one event.
        measure: ``cost`` (a workload's cost) or ``cloud_cost``.
        pattern: ``spike`` (a sudden jump or drop) or ``shift`` (a sustained change of level,
            no single day of which need be extreme), as the detector classed the incident; a
            shift is read differently (a new normal to act on, not a blip to wait out).
    """

    kind: ClassVar[str] = "anomaly"
    series: str
    ds: datetime
    actual: float
    expected: float
    currency: str = "USD"
    anomaly_id: str | None = None
    measure: str = "cost"
    pattern: str | None = None

    @property
    def key(self) -> str:
        return f"anomaly:{self.measure}:{self.incident}"

    @property
    def incident(self) -> str:
        """The id the feedback command takes (``<series>@<start>``)."""
        return self.anomaly_id or f"{self.series}@{self.ds:%Y-%m-%d}"

    @property
    def workload(self) -> str | None:
        return self.series if self.measure == "cost" else None

    @property
    def cloud(self) -> str | None:
        return self.series if self.measure == "cloud_cost" else None

    @property
    def impact(self) -> float:
        return abs(self.actual - self.expected)

    @property
    def feedback(self) -> str:
        """The command that tells cloudbalance whether this was a real anomaly."""
        return f"cloudbalance anomalies feedback {self.incident} --label yes|no|planned"

    @property
    def title(self) -> str:
        direction = "above" if self.actual >= self.expected else "below"
        return (
            f"Cost anomaly: {_label(self.series, self.measure)} on {_day(self.ds)} "
            f"{_money(self.impact, self.currency)} {direction} expected"
        )

    @property
    def body(self) -> str:
        what = {"spike": "A sudden spike: ", "shift": "A sustained shift: "}.get(
            self.pattern or "", ""
        )
        return (
            f"{what}{_label(self.series, self.measure)} cost "
            f"{_money(self.actual, self.currency)} on {_day(self.ds)}; "
            f"expected {_money(self.expected, self.currency)}.\n"
            f"Was it expected? Tell cloudbalance: `{self.feedback}`"
        )


@dataclass(frozen=True)
class BudgetAlert(Event):
    """A budget threshold crossed, or forecast to be crossed, in the current period.

    Attributes:
        budget: The budget's label.
        threshold: The share of the amount (0.9 = 90%).
        crossed: ``True`` when spend to date is over it; ``False`` when only forecast to be.
        amount, actual, projected: The cap, spent to date, projected for the period.
        probability: Probability of ending the period above the threshold.
        period_start: First day of the period.
        cloud_name, workload_name: The budget's scope.
    """

    kind: ClassVar[str] = "budget"
    budget: str
    threshold: float
    crossed: bool
    amount: float
    actual: float
    projected: float
    probability: float
    period_start: datetime
    currency: str = "USD"
    cloud_name: str | None = None
    workload_name: str | None = None

    @property
    def key(self) -> str:
        state = "crossed" if self.crossed else "forecast"
        return f"budget:{self.budget}:{_day(self.period_start)}:{self.threshold:g}:{state}"

    @property
    def workload(self) -> str | None:
        return self.workload_name

    @property
    def cloud(self) -> str | None:
        return self.cloud_name

    @property
    def impact(self) -> float:
        return max(self.projected - self.threshold * self.amount, self.actual, 0.0)

    @property
    def title(self) -> str:
        verb = "crossed" if self.crossed else "forecast to cross"
        return f"Budget {self.budget}: {verb} {self.threshold:.0%}"

    @property
    def body(self) -> str:
        return (
            f"{self.budget}: spent {_money(self.actual, self.currency)} of "
            f"{_money(self.amount, self.currency)} since {_day(self.period_start)}; projected "
            f"{_money(self.projected, self.currency)} by the end of the period "
            f"(probability {self.probability:.0%} of ending above {self.threshold:.0%})."
        )


@dataclass(frozen=True)
class PlanApplied(Event):
    """A plan was committed or its pull request opened.

    Attributes:
        plan_id, mode: The plan and how it was written (``commit``, ``pr``, ``branch``).
        saving: Expected saving over the horizon.
        moves: Number of moves.
        where: Commit, branch or pull-request URL.
    """

    kind: ClassVar[str] = "plan"
    plan_id: str
    mode: str
    saving: float
    moves: int
    where: str = ""
    currency: str = "USD"

    @property
    def key(self) -> str:
        return f"plan:{self.plan_id}:{self.mode}"

    @property
    def impact(self) -> float:
        return abs(self.saving)

    @property
    def title(self) -> str:
        verb = "pull request opened" if self.mode == "pr" else f"{self.mode} made"
        return f"Plan {self.plan_id}: {verb}, saving {_money(self.saving, self.currency)}"

    @property
    def body(self) -> str:
        return (
            f"Plan {self.plan_id} moves {self.moves} placement(s); expected saving "
            f"{_money(self.saving, self.currency)}. {self.where}".strip()
        )


@dataclass(frozen=True)
class RevertProposed(Event):
    """A plan did worse than not moving (or failed its health check): a revert is proposed.

    Attributes:
        plan_id: The plan.
        status: The revert's outcome (``proposed``, ``blocked``...).
        detail: Why, in one line.
        excess: Realised minus not moving, when known.
    """

    kind: ClassVar[str] = "revert"
    plan_id: str
    status: str
    detail: str
    excess: float | None = None
    currency: str = "USD"

    @property
    def key(self) -> str:
        return f"revert:{self.plan_id}:{self.status}"

    @property
    def impact(self) -> float | None:
        return None if self.excess is None else abs(self.excess)

    @property
    def title(self) -> str:
        return f"Revert of plan {self.plan_id}: {self.status}"

    @property
    def body(self) -> str:
        lost = (
            f" It cost {_money(self.excess, self.currency)} more than not moving."
            if self.excess is not None
            else ""
        )
        return f"Plan {self.plan_id}: revert {self.status}. {self.detail}.{lost}"


@dataclass(frozen=True)
class StepFailed(Event):
    """A step of the daily run failed (the others ran)."""

    kind: ClassVar[str] = "step_failed"
    run_id: str
    step: str
    detail: str

    @property
    def key(self) -> str:
        return f"step:{self.run_id}:{self.step}"

    @property
    def title(self) -> str:
        return f"cloudbalance run {self.run_id}: step {self.step} failed"

    @property
    def body(self) -> str:
        return f"Step {self.step} failed: {self.detail}\nThe other steps ran; see the report."


# ---------------------------------------------------------------------------------- builders


def _ts(value: Any) -> datetime:
    import pandas as pd

    stamp: datetime = pd.Timestamp(value).to_pydatetime()
    return stamp


def spike_events(
    spikes: pd.DataFrame, forecast: pd.DataFrame | None = None, *, currency: str = "USD"
) -> list[SpikePredicted]:
    """One event per spike warning (``Forecasts.spikes``: with a ``kind`` column).

    For money series (``cost``, ``cloud_cost``) the extra cost is the forecast above the
    normal level over the spike's periods, when ``forecast`` (with ``kind``) is given.
    """
    import pandas as pd

    events = []
    for row in spikes.to_dict("records"):
        uid = str(row["unique_id"])
        measure = str(row.get("kind") or "")
        extra = None
        if (
            forecast is not None
            and not forecast.empty
            and "kind" in forecast
            and measure in ("cost", "cloud_cost")
        ):
            rows = forecast[
                (forecast["kind"] == measure)
                & (forecast["unique_id"].astype(str) == uid)
                & (pd.to_datetime(forecast["ds"]) >= pd.Timestamp(row["start"]))
                & (pd.to_datetime(forecast["ds"]) <= pd.Timestamp(row["end"]))
            ]
            extra = float((rows["yhat"] - float(row["normal_level"])).clip(lower=0).sum())
        events.append(
            SpikePredicted(
                series=uid,
                measure=measure,
                start=_ts(row["start"]),
                end=_ts(row["end"]),
                peak=_ts(row["peak_ds"]),
                expected=float(row["expected"]),
                normal=float(row["normal_level"]),
                probability=float(row["probability"]),
                extra_cost=extra,
                currency=currency,
            )
        )
    return events


def anomaly_events(
    anomalies: pd.DataFrame, *, currency: str = "USD", since: datetime | None = None
) -> list[AnomalyDetected]:
    """One event per flagged incident (``detect_anomalies`` output with a ``kind`` column).

    Args:
        anomalies: ``unique_id, ds, y, anomaly, score, expected`` and ``kind`` (``cost`` or
            ``cloud_cost``; default ``cost``); ``anomaly_id`` groups days into incidents and
            ``anomaly_kind`` (``spike`` or ``shift``), when present, says which it is.
        currency: Currency of the costs.
        since: Only points at or after this (the history's old anomalies were told before).
    """
    if anomalies.empty:
        return []
    flagged = anomalies[anomalies["anomaly"].astype(bool)]
    if "anomaly_id" in flagged and not flagged.empty:
        # one event per incident: its day furthest from the expected cost
        gap = (flagged["y"] - flagged["expected"]).abs()
        incident = flagged["anomaly_id"].astype(str)
        if "kind" in flagged:
            incident = flagged["kind"].astype(str) + "|" + incident
        flagged = flagged.loc[gap.groupby(incident).idxmax().dropna()]
    events = []
    for row in flagged.to_dict("records"):
        when = _ts(row["ds"])
        expected = float(row["expected"])
        if (since is not None and when < since) or not math.isfinite(expected):
            continue
        events.append(
            AnomalyDetected(
                series=str(row["unique_id"]),
                ds=when,
                actual=float(row["y"]),
                expected=expected,
                currency=currency,
                anomaly_id=str(row["anomaly_id"]) if row.get("anomaly_id") else None,
                measure=str(row.get("kind") or "cost"),
                pattern=str(row["anomaly_kind"]) if row.get("anomaly_kind") else None,
            )
        )
    return events


def budget_events(
    statuses: Iterable[BudgetStatus], *, probability: float = 0.5
) -> list[BudgetAlert]:
    """Per budget, the highest threshold crossed and the highest forecast to be crossed.

    Only the highest of each is sent: at 92% nobody needs three messages for 50, 75 and 90%.
    A threshold is forecast to be crossed when the probability is at least ``probability``.
    """
    events = []
    for status in statuses:
        b = status.budget
        common: dict[str, Any] = {
            "budget": b.label,
            "amount": b.amount,
            "actual": status.actual,
            "projected": status.projected,
            "period_start": status.start,
            "currency": status.currency,
            "cloud_name": b.cloud,
            "workload_name": b.workload,
        }
        if status.crossed:
            top = max(status.crossed)
            events.append(BudgetAlert(threshold=top, crossed=True, probability=1.0, **common))
        likely = status.likely(probability)
        if likely:
            top = max(likely)
            events.append(
                BudgetAlert(
                    threshold=top,
                    crossed=False,
                    probability=status.probabilities[top],
                    **common,
                )
            )
    return events


def plan_events(plan: Plan | None, applied: Any) -> list[PlanApplied]:
    """The plan written by the act step (``ApplyResult``), if it committed or opened a PR."""
    if plan is None or applied is None:
        return []
    mode = str(getattr(applied, "mode", ""))
    commit = getattr(applied, "commit", None)
    pull_request = getattr(applied, "pull_request", None)
    url = getattr(pull_request, "url", None)
    if mode not in ("commit", "pr", "branch") or not (commit or url):
        return []
    branch = getattr(applied, "branch", None)
    where = str(url) if url else f"Commit {str(commit)[:10]} on {branch}."
    return [
        PlanApplied(
            plan_id=plan.plan_id,
            mode=mode,
            saving=plan.saving,
            moves=len(plan.moves),
            where=where,
            currency=plan.currency,
        )
    ]


def revert_events(
    reverts: Iterable[RevertOutcome], verifications: Sequence[Any] = ()
) -> list[RevertProposed]:
    """One event per revert outcome that needs a person (proposed, blocked, failed)."""
    excess = {v.plan_id: float(v.excess) for v in verifications}
    currency = {v.plan_id: str(v.currency) for v in verifications}
    return [
        RevertProposed(
            plan_id=r.plan_id,
            status=r.status,
            detail=r.detail,
            excess=excess.get(r.plan_id),
            currency=currency.get(r.plan_id, "USD"),
        )
        for r in reverts
        if r.status in ("proposed", "blocked", "failed")
    ]


def step_failed_events(run_id: str, steps: Iterable[Any]) -> list[StepFailed]:
    """One event per failed step (``StepResult`` or a mapping with step, status, detail)."""
    events = []
    for step in steps:
        get = step.get if isinstance(step, Mapping) else (lambda k, s=step: getattr(s, k, ""))
        if get("status") == "failed":
            events.append(
                StepFailed(run_id=run_id, step=str(get("step")), detail=str(get("detail")))
            )
    return events


def events_from_steps(
    settings: Settings, store: Store, run_id: str, steps: Sequence[Any]
) -> list[Event]:
    """Every event of a run, from its typed step results (``cloudbalance.steps``) and budgets.

    Reads, where a step has them: ``status`` (failed steps), ``forecasts`` and ``anomalies``
    (with ``data_as_of``: anomalies of the last :data:`ANOMALY_DAYS` days of data are news,
    older ones are history), ``plan`` and ``applied``, ``verified`` and ``reverts``.
    """
    from datetime import timedelta

    from cloudbalance.budgets import evaluate_budgets
    from cloudbalance.exceptions import CloudBalanceError

    plan = next((s.plan for s in steps if getattr(s, "plan", None) is not None), None)
    currency = plan.currency if plan is not None else settings.currency.report or "USD"
    events: list[Event] = list(step_failed_events(run_id, steps))
    for step in steps:
        forecasts = getattr(step, "forecasts", None)
        if forecasts is not None:
            events += spike_events(forecasts.spikes, forecasts.forecast, currency=currency)
        anomalies = getattr(step, "anomalies", None)
        as_of = getattr(step, "data_as_of", None)
        if anomalies is not None and not anomalies.empty and as_of is not None:
            since = as_of - timedelta(days=ANOMALY_DAYS)
            events += anomaly_events(anomalies, currency=currency, since=since)
        applied = getattr(step, "applied", None)
        if applied is not None:
            events += plan_events(plan, applied)
        reverts = getattr(step, "reverts", ())
        if reverts:
            events += revert_events(reverts, getattr(step, "verified", ()))
    # no cost data yet: the failed steps already say so
    with contextlib.suppress(CloudBalanceError):
        events += budget_events(evaluate_budgets(settings, store))
    return events
